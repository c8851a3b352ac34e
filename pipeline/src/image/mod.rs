//! Image operations: decoding to RGB8 with Pillow's semantics, Pillow-exact resampling,
//! and the views (ADM center crop, its flip, random-resized crops) stored in shards.

pub mod decode;
mod jpeg;
pub mod png;
pub mod resample;
pub mod views;

/// An 8-bit RGB image, rows top to bottom, pixels interleaved `[r, g, b]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Rgb8 {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Rgb8 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Rgb8({}x{})", self.width, self.height)
    }
}

impl Rgb8 {
    /// Wraps interleaved RGB bytes.
    ///
    /// # Panics
    /// If `data.len() != width * height * 3`.
    pub fn new(width: usize, height: usize, data: Vec<u8>) -> Self {
        assert_eq!(data.len(), width * height * 3, "RGB8 buffer size");
        Rgb8 {
            width,
            height,
            data,
        }
    }

    /// The image mirrored left to right.
    pub fn flipped_horizontally(&self) -> Rgb8 {
        let row = self.width * 3;
        let mut out = Vec::with_capacity(self.data.len());
        for src in self.data.chunks_exact(row) {
            for px in src.chunks_exact(3).rev() {
                out.extend_from_slice(px);
            }
        }
        Rgb8::new(self.width, self.height, out)
    }

    /// Copy of the rectangle starting at (`left`, `top`).
    ///
    /// # Panics
    /// If the rectangle leaves the image.
    pub fn crop(&self, left: usize, top: usize, width: usize, height: usize) -> Rgb8 {
        assert!(
            left + width <= self.width && top + height <= self.height,
            "crop outside image"
        );
        let mut out = Vec::with_capacity(width * height * 3);
        for y in top..top + height {
            let start = (y * self.width + left) * 3;
            out.extend_from_slice(&self.data[start..start + width * 3]);
        }
        Rgb8::new(width, height, out)
    }
}
