//! Decoding against Pillow's `Image.open(f).convert("RGB")`, one file per colour mode and
//! container (`tests/fixtures/decode`, made by `tests/fixtures/gen/gen_images.py`).
//!
//! Every case matches exactly: JPEGs are decoded by libjpeg-turbo like Pillow's, PNG and
//! WebP (lossless and lossy) by decoders whose output is specified to the bit.

mod common;

use common::{diff, fixture, load};
use maetok_pipeline::image::decode::{decode_rgb8, DecodeOptions};

/// (case, file extension, expected Pillow mode, max allowed |Δ|)
const CASES: &[(&str, &str, &str, u8)] = &[
    ("rgb_q90_420", "jpg", "RGB", 0),
    ("rgb_q95_444", "jpg", "RGB", 0),
    ("rgb_q85_422", "jpg", "RGB", 0),
    ("rgb_progressive", "jpg", "RGB", 0),
    ("gray_jpeg", "jpg", "L", 0),
    ("cmyk_jpeg", "jpg", "CMYK", 0),
    ("exif_rotated", "jpg", "RGB", 0),
    ("rgb_png", "png", "RGB", 0),
    ("rgba_png", "png", "RGBA", 0),
    ("la_png", "png", "LA", 0),
    ("gray_png", "png", "L", 0),
    ("bilevel_png", "png", "1", 0),
    ("palette_png", "png", "P", 0),
    ("palette_trns_png", "png", "P", 0),
    ("gray16_png", "png", "I;16", 0),
    ("rgb16_png", "png", "RGB;16", 0),
    ("rgba16_png", "png", "RGBA;16", 0),
    ("la16_png", "png", "LA;16", 0),
    ("webp_lossless", "webp", "RGB", 0),
    ("webp_lossy", "webp", "RGB", 0),
];

#[test]
fn every_mode_converts_like_pillow() {
    let opts = DecodeOptions::default();
    let mut failures = Vec::new();
    for &(case, ext, mode, tol) in CASES {
        let bytes = std::fs::read(fixture(&format!("decode/{case}.{ext}"))).unwrap();
        let d = decode_rgb8(&bytes, &opts).unwrap_or_else(|e| panic!("{case}: {e}"));
        let expected = load(&fixture(&format!("decode/{case}.rgb.png")));
        let (max, frac) = diff(&d.image, &expected);
        println!(
            "{case:18} mode {:8} max |Δ| {max}, {:.2}% differ",
            d.mode,
            100.0 * frac
        );
        if d.mode != mode {
            failures.push(format!("{case}: source mode {} (expected {mode})", d.mode));
        }
        if max > tol {
            failures.push(format!(
                "{case}: differs from Pillow by {max} (allowed {tol})"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn exif_orientation_is_ignored_by_default_and_applied_on_request() {
    let bytes = std::fs::read(fixture("decode/exif_rotated.jpg")).unwrap();
    let plain = decode_rgb8(&bytes, &DecodeOptions::default())
        .unwrap()
        .image;
    let turned = decode_rgb8(
        &bytes,
        &DecodeOptions {
            exif_orientation: true,
            ..Default::default()
        },
    )
    .unwrap()
    .image;
    let expected = load(&fixture("decode/exif_rotated.exif.rgb.png"));
    assert_eq!((plain.width, plain.height), (61, 47));
    assert_eq!((turned.width, turned.height), (47, 61));
    let (max, _) = diff(&turned, &expected);
    assert!(
        max <= 1,
        "EXIF-transposed image differs from Pillow by {max}"
    );
}

#[test]
fn pixel_limit_rejects_before_decoding() {
    let bytes = std::fs::read(fixture("decode/rgb_q90_420.jpg")).unwrap();
    let e = decode_rgb8(
        &bytes,
        &DecodeOptions {
            max_pixels: 1000,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.reason(), "too_many_pixels");
    assert!(e.to_string().contains("61x47"), "{e}");
}

#[test]
fn truncated_files_are_errors_not_gray_images() {
    for (case, ext) in [
        ("rgb_q90_420", "jpg"),
        ("rgb_progressive", "jpg"),
        ("rgb_png", "png"),
        ("webp_lossless", "webp"),
    ] {
        let bytes = std::fs::read(fixture(&format!("decode/{case}.{ext}"))).unwrap();
        // Cuts inside the image data (a PNG missing only its IEND chunk still holds every pixel).
        for cut in [bytes.len() / 3, bytes.len() * 2 / 3, bytes.len() - 16] {
            let r = decode_rgb8(&bytes[..cut], &DecodeOptions::default());
            assert!(
                r.is_err(),
                "{case} cut at {cut}/{} decoded anyway",
                bytes.len()
            );
        }
    }
}
