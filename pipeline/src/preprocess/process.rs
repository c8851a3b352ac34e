//! The per-image work of the decode pool: bytes → RGB8 → views → HOG + PNG → shard rows.

use half::f16;

use super::config::PreprocessConfig;
use crate::caption::{ClipBpe, CONTEXT_LEN};
use crate::image::decode::{decode_rgb8, DecodeOptions};
use crate::image::png::encode_png;
use crate::image::views::make_views;
use crate::shard::writer::Row;
use crate::source::{RawSample, Reject};

/// What one sample became.
pub enum Outcome {
    Rows {
        rows: Vec<Row>,
        /// Source colour mode when a conversion to RGB8 was needed.
        converted: Option<&'static str>,
        caption_missing: bool,
        /// The sample's kept-with-a-note problems (see `RawSample::notes`).
        notes: Vec<(&'static str, String)>,
        key: String,
        origin: String,
        /// The views' pixels, kept for the teacher stage (empty without ViT teachers).
        pixels: Vec<crate::image::Rgb8>,
    },
    Reject(Reject),
}

/// Decodes and processes one sample under `cfg`.
pub fn process(sample: RawSample, cfg: &PreprocessConfig, bpe: Option<&ClipBpe>) -> Outcome {
    let RawSample {
        key,
        origin,
        bytes,
        label,
        caption,
        caption_missing,
        notes,
    } = sample;
    let reject = |reason: &str, detail: String| {
        Outcome::Reject(Reject {
            key: key.clone(),
            origin: origin.clone(),
            reason: reason.into(),
            detail,
        })
    };
    super::fault::maybe_panic(&key);
    let opts = DecodeOptions {
        max_pixels: cfg.max_pixels,
        exif_orientation: cfg.exif_orientation,
    };
    let decoded = match decode_rgb8(&bytes, &opts) {
        Ok(d) => d,
        Err(e) => return reject(e.reason(), e.to_string()),
    };
    drop(bytes);
    let img = &decoded.image;
    if img.width.min(img.height) < cfg.min_side {
        return reject(
            "too_small",
            format!(
                "{}x{} is below min_side = {}",
                img.width, img.height, cfg.min_side
            ),
        );
    }
    let views = make_views(img, cfg.resolution, cfg.views, cfg.seed, &key);
    let text_ids: Option<Vec<i32>> = match (bpe, &caption) {
        (Some(bpe), Some(c)) => Some(
            bpe.tokenize(c, CONTEXT_LEN)
                .into_iter()
                .map(|i| i as i32)
                .collect(),
        ),
        _ => None,
    };
    let mut rows = Vec::with_capacity(views.len());
    let mut pixels = Vec::new();
    for v in views {
        let hog = if cfg.hog {
            let feats =
                maetok_teachers::hog::hog_rgb8(&v.pixels.data, v.pixels.width, v.pixels.height)
                    .expect("views are multiples of 16 px (config validated)");
            Some(feats.into_iter().map(f16::from_f32).collect())
        } else {
            None
        };
        rows.push(Row {
            key: key.clone(),
            view: v.index as i16,
            crop: v.crop,
            label,
            caption: caption.clone(),
            image: encode_png(&v.pixels, cfg.png_compression),
            hog,
            teachers: Vec::new(),
            text_ids: text_ids.clone(),
        });
        if !cfg.teachers.is_empty() {
            pixels.push(v.pixels);
        }
    }
    let converted = decoded.converted().then_some(decoded.mode);
    Outcome::Rows {
        rows,
        converted,
        caption_missing,
        notes,
        key,
        origin,
        pixels,
    }
}
