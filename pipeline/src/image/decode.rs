//! Decoding JPEG / PNG / WebP bytes to RGB8 with Pillow's `Image.open(f).convert("RGB")`
//! semantics, mode by mode (spec §6), because the reference pipelines feed exactly those
//! pixels to the tokenizer and teachers:
//!
//! | source | Pillow mode | to RGB |
//! |---|---|---|
//! | gray 1/2/4/8-bit, gray+tRNS | `1`/`L` | replicate |
//! | gray 16-bit PNG | `I;16` | values above 255 clip to 255 (Pillow `I16_RGB`) |
//! | gray+alpha 8-bit / 16-bit | `LA` / `RGBA` (high byte) | drop alpha |
//! | RGB / RGBA 16-bit PNG | `RGB`/`RGBA` via `;16B` (high byte) | drop alpha |
//! | palette (with or without transparency) | `P` | palette colour, alpha dropped |
//! | CMYK / YCCK JPEG | `CMYK` (libjpeg converts YCCK), always read inverted (Adobe convention) | `255-k - (c·(255-k))/255` rounded as Pillow's `MULDIV255` |
//!
//! JPEGs are decoded by libjpeg-turbo, as in Pillow (see `jpeg.rs`); PNG and WebP by the
//! `image` crate, whose output for these lossless formats is exact.
//!
//! Alpha is dropped, never composited. EXIF orientation is ignored unless asked for, as the
//! reference pipelines ignore it. Truncated JPEGs are errors (Pillow raises "image file is
//! truncated"), detected by a missing EOI marker after the last scan.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};

use super::Rgb8;

/// The default decompression-bomb limit in pixels.
pub const MAX_PIXELS: u64 = 40_000_000;

/// How to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Decompression-bomb limit: images with more pixels are rejected before decoding.
    pub max_pixels: u64,
    /// Apply the EXIF orientation tag (off by default, as in the reference pipelines).
    pub exif_orientation: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        // 40 megapixels (a 7,300 × 5,480 photograph): it bounds what one decode thread can
        // be made to allocate. Pillow's limit (89,478,485, where it only warns) let a 3.4 KB
        // JPEG claiming 9,000 × 9,000 take 0.9 GB per thread; a real 40 MP JPEG raised the
        // peak memory of a 1-thread preprocess by 95 MB (589 vs 494 MB, 2026-12-01).
        DecodeOptions {
            max_pixels: MAX_PIXELS,
            exif_orientation: false,
        }
    }
}

/// Why bytes did not become an image. `reason()` is the stable code counted in manifests.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("empty file")]
    Empty,
    #[error("not a JPEG, PNG or WebP image")]
    UnknownFormat,
    #[error("{width}x{height} = {} pixels exceeds the limit of {limit}", *width as u64 * *height as u64)]
    TooManyPixels { width: u32, height: u32, limit: u64 },
    #[error("image data is truncated")]
    Truncated,
    #[error("corrupt image: {0}")]
    Corrupt(String),
    #[error("unsupported image: {0}")]
    Unsupported(String),
}

impl DecodeError {
    /// Stable reject reason code.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Empty => "empty_file",
            DecodeError::UnknownFormat => "unknown_format",
            DecodeError::TooManyPixels { .. } => "too_many_pixels",
            DecodeError::Truncated => "truncated",
            DecodeError::Corrupt(_) => "decode_error",
            DecodeError::Unsupported(_) => "unsupported",
        }
    }
}

/// A decoded image and what it was converted from.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub image: Rgb8,
    /// Container format: `jpeg`, `png`, `webp`.
    pub format: &'static str,
    /// The source colour mode, Pillow-style (`RGB`, `L`, `LA`, `RGBA`, `P`, `CMYK`, `I;16`, ...).
    pub mode: &'static str,
}

impl Decoded {
    /// Whether producing RGB8 needed a conversion (counted in the preprocess summary).
    pub fn converted(&self) -> bool {
        self.mode != "RGB"
    }
}

/// Decodes `bytes` into RGB8 (see the module docs for the per-mode rules).
pub fn decode_rgb8(bytes: &[u8], opts: &DecodeOptions) -> Result<Decoded, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    let format = image::guess_format(bytes).map_err(|_| DecodeError::UnknownFormat)?;
    match format {
        ImageFormat::Jpeg => decode_jpeg(bytes, opts),
        ImageFormat::Png | ImageFormat::WebP => decode_with_image(bytes, format, opts),
        _ => Err(DecodeError::UnknownFormat),
    }
}

fn check_pixels(width: u32, height: u32, opts: &DecodeOptions) -> Result<(), DecodeError> {
    if width as u64 * height as u64 > opts.max_pixels {
        return Err(DecodeError::TooManyPixels {
            width,
            height,
            limit: opts.max_pixels,
        });
    }
    if width == 0 || height == 0 {
        return Err(DecodeError::Corrupt(format!(
            "zero-sized image {width}x{height}"
        )));
    }
    Ok(())
}

/// True when a JPEG stream ends with its EOI marker after the last start-of-scan. Inside
/// entropy-coded data 0xFF is always followed by 0x00 or a restart marker, so an `FF D9`
/// after the last `FF DA` can only be the real end of image (an EXIF thumbnail's EOI lies
/// before the main image's scans).
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_sos = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    match last_sos {
        Some(pos) => bytes[pos..].windows(2).any(|w| w == [0xFF, 0xD9]),
        None => false,
    }
}

fn decode_jpeg(bytes: &[u8], opts: &DecodeOptions) -> Result<Decoded, DecodeError> {
    let hdr = super::jpeg::header(bytes)?;
    check_pixels(hdr.width, hdr.height, opts)?;
    if !jpeg_is_complete(bytes) {
        return Err(DecodeError::Truncated);
    }
    let (data, mode) = super::jpeg::decode(bytes, &hdr)?;
    let mut image = Rgb8::new(hdr.width as usize, hdr.height as usize, data);
    if opts.exif_orientation {
        if let Some(o) =
            super::jpeg::exif(bytes).and_then(image::metadata::Orientation::from_exif_chunk)
        {
            image = apply_orientation(image, o);
        }
    }
    Ok(Decoded {
        image,
        format: "jpeg",
        mode,
    })
}

fn gray_to_rgb(gray: &[u8]) -> Vec<u8> {
    gray.iter().flat_map(|&v| [v, v, v]).collect()
}

fn decode_with_image(
    bytes: &[u8],
    format: ImageFormat,
    opts: &DecodeOptions,
) -> Result<Decoded, DecodeError> {
    let corrupt = |e: image::ImageError| match e {
        image::ImageError::IoError(ref io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            DecodeError::Truncated
        }
        image::ImageError::Unsupported(u) => DecodeError::Unsupported(u.to_string()),
        other => DecodeError::Corrupt(other.to_string()),
    };
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.no_limits();
    let mut decoder = reader.into_decoder().map_err(corrupt)?;
    let (w, h) = decoder.dimensions();
    check_pixels(w, h, opts)?;
    let orientation = if opts.exif_orientation {
        decoder.orientation().ok()
    } else {
        None
    };
    let has_alpha = decoder.color_type().has_alpha();
    let img = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    let drop_alpha = |px: &[u8], n: usize| -> Vec<u8> {
        px.chunks_exact(n)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect()
    };
    let data = match img {
        DynamicImage::ImageRgb8(b) => b.into_raw(),
        DynamicImage::ImageRgba8(b) => drop_alpha(&b.into_raw(), 4),
        DynamicImage::ImageLuma8(b) => gray_to_rgb(&b.into_raw()),
        DynamicImage::ImageLumaA8(b) => b
            .into_raw()
            .chunks_exact(2)
            .flat_map(|p| [p[0]; 3])
            .collect(),
        // Pillow opens 16-bit gray as I;16 and converts it to RGB by clipping at 255.
        DynamicImage::ImageLuma16(b) => b
            .into_raw()
            .iter()
            .flat_map(|&v| [v.min(255) as u8; 3])
            .collect(),
        // Pillow's ";16B" unpackers keep the high byte of 16-bit LA / RGB / RGBA samples.
        DynamicImage::ImageLumaA16(b) => b
            .into_raw()
            .chunks_exact(2)
            .flat_map(|p| [(p[0] >> 8) as u8; 3])
            .collect(),
        DynamicImage::ImageRgb16(b) => b.into_raw().iter().map(|&v| (v >> 8) as u8).collect(),
        DynamicImage::ImageRgba16(b) => b
            .into_raw()
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]].map(|v| (v >> 8) as u8))
            .collect(),
        other => {
            return Err(DecodeError::Unsupported(format!(
                "pixel layout {:?}",
                other.color()
            )))
        }
    };
    let (fmt, mode) = match format {
        ImageFormat::Png => ("png", png_mode(bytes)),
        _ => ("webp", if has_alpha { "RGBA" } else { "RGB" }),
    };
    let mut image = Rgb8::new(w as usize, h as usize, data);
    if let Some(o) = orientation {
        image = apply_orientation(image, o);
    }
    Ok(Decoded {
        image,
        format: fmt,
        mode,
    })
}

/// Pillow's mode name for a PNG, from the IHDR colour type and bit depth.
fn png_mode(bytes: &[u8]) -> &'static str {
    // signature (8) + chunk length (4) + "IHDR" (4) + width (4) + height (4) = 24
    match (bytes.get(24).copied(), bytes.get(25).copied()) {
        (Some(1), Some(0)) => "1",
        (Some(16), Some(0)) => "I;16",
        (_, Some(0)) => "L",
        (Some(16), Some(2)) => "RGB;16",
        (_, Some(2)) => "RGB",
        (_, Some(3)) => "P",
        (Some(16), Some(4)) => "LA;16",
        (_, Some(4)) => "LA",
        (Some(16), Some(6)) => "RGBA;16",
        (_, Some(6)) => "RGBA",
        _ => "unknown",
    }
}

fn apply_orientation(img: Rgb8, o: image::metadata::Orientation) -> Rgb8 {
    if o == image::metadata::Orientation::NoTransforms {
        return img;
    }
    let buf = image::RgbImage::from_raw(img.width as u32, img.height as u32, img.data)
        .expect("sized buffer");
    let mut dynimg = DynamicImage::ImageRgb8(buf);
    dynimg.apply_orientation(o);
    let rgb = dynimg.into_rgb8();
    Rgb8::new(rgb.width() as usize, rgb.height() as usize, rgb.into_raw())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_garbage_are_typed() {
        let o = DecodeOptions::default();
        assert_eq!(decode_rgb8(&[], &o).unwrap_err().reason(), "empty_file");
        assert_eq!(
            decode_rgb8(b"hello world", &o).unwrap_err().reason(),
            "unknown_format"
        );
        let mut fake_jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0];
        fake_jpeg.extend_from_slice(&[7u8; 64]);
        assert!(decode_rgb8(&fake_jpeg, &o).is_err());
    }
}
