//! PNG encoding of view pixels for the shards' `image` column (lossless, so the stored
//! pixels are exactly those the targets were computed from).

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::ImageEncoder;

use super::Rgb8;

/// PNG compression effort for the `image` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum PngCompression {
    /// fdeflate: fastest, larger files.
    #[default]
    Fast,
    /// zlib level 6 (Pillow's default).
    Default,
    /// zlib level 9.
    Best,
}

/// Encodes `img` as an 8-bit RGB PNG.
pub fn encode_png(img: &Rgb8, level: PngCompression) -> Vec<u8> {
    let compression = match level {
        PngCompression::Fast => CompressionType::Fast,
        PngCompression::Default => CompressionType::Default,
        PngCompression::Best => CompressionType::Best,
    };
    let mut out = Vec::with_capacity(img.data.len() / 2);
    PngEncoder::new_with_quality(&mut out, compression, FilterType::Adaptive)
        .write_image(
            &img.data,
            img.width as u32,
            img.height as u32,
            image::ExtendedColorType::Rgb8,
        )
        .expect("encoding an in-memory RGB8 PNG cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::decode::{decode_rgb8, DecodeOptions};

    #[test]
    fn png_round_trip_is_lossless() {
        let data: Vec<u8> = (0..40 * 30 * 3).map(|i| (i * 7 % 251) as u8).collect();
        let img = Rgb8::new(40, 30, data);
        for level in [
            PngCompression::Fast,
            PngCompression::Default,
            PngCompression::Best,
        ] {
            let back = decode_rgb8(&encode_png(&img, level), &DecodeOptions::default()).unwrap();
            assert_eq!(back.image, img);
        }
    }
}
