//! View 0 (the ADM center crop) against Pillow on real photographs: decode the committed
//! JPEG with our decoder, crop, and compare with Pillow's crop of the same file
//! (`tests/fixtures/gen/gen_images.py`). The resampling is Pillow's arithmetic exactly; the
//! only source of difference is the JPEG decoder (zune-jpeg vs libjpeg-turbo), so at most
//! one level per channel is allowed.

mod common;

use common::{diff, fixture, load};
use maetok_pipeline::image::views::adm_center_crop;

fn photos() -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(fixture("photos"))
        .expect("photos fixtures")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    v.sort();
    v
}

fn check(resolution: usize) -> usize {
    let mut checked = 0;
    for jpg in photos() {
        let expected_path = jpg.with_extension(format!("adm{resolution}.png"));
        if !expected_path.exists() {
            continue;
        }
        let (ours, crop) = adm_center_crop(&load(&jpg), resolution);
        let pillow = load(&expected_path);
        let (max, frac) = diff(&ours, &pillow);
        println!(
            "{}: {resolution}px max |Δ| {max}, {:.3}% of values differ, crop {crop:?}",
            jpg.display(),
            100.0 * frac
        );
        assert!(
            max <= 1,
            "{}: view 0 differs from Pillow by {max} levels",
            jpg.display()
        );
        checked += 1;
    }
    checked
}

#[test]
fn center_crop_256_matches_pillow() {
    assert!(check(256) >= 6, "need at least six photographs");
}

#[test]
fn center_crop_512_matches_pillow() {
    assert!(check(512) >= 3);
}

/// The resampler alone, with no decoder in the way: Pillow's crop of Pillow's decode is
/// reproduced exactly when we start from Pillow's decoded pixels. The lossless PNG of the
/// 512 crop is decoded identically by both, so cropping it to 256 (one BOX halving) must
/// match Pillow bit for bit.
#[test]
fn resampling_is_bit_exact_on_identical_input() {
    use maetok_pipeline::image::resample::{resize, Filter};
    let src = load(&fixture("photos/rocket_640x427.adm512.png"));
    let halved = resize(&src, 256, 256, Filter::Box);
    let (crop, _) = adm_center_crop(&src, 256);
    assert_eq!(
        halved, crop,
        "a square 512 image's 256 crop is exactly one BOX halving"
    );
}
