//! Helpers shared by the parity tests: fixture paths and image comparison.

#![allow(dead_code)]

use std::path::PathBuf;

use maetok_pipeline::image::decode::{decode_rgb8, DecodeOptions};
use maetok_pipeline::image::Rgb8;

/// `tests/fixtures/<rel>` of the workspace.
pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(rel)
}

/// Decodes a fixture file with default options.
pub fn load(path: &std::path::Path) -> Rgb8 {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    decode_rgb8(&bytes, &DecodeOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .image
}

/// (max |Δ| over all channels, fraction of channel values that differ).
pub fn diff(a: &Rgb8, b: &Rgb8) -> (u8, f64) {
    assert_eq!((a.width, a.height), (b.width, b.height), "sizes differ");
    let mut max = 0u8;
    let mut n = 0usize;
    for (x, y) in a.data.iter().zip(&b.data) {
        let d = x.abs_diff(*y);
        max = max.max(d);
        n += (d != 0) as usize;
    }
    (max, n as f64 / a.data.len() as f64)
}
