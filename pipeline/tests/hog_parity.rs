//! Our HOG against the official `utils/hog.py` (commit f4d60a0, imported unmodified by
//! `tests/fixtures/gen/gen_images.py`) on the Pillow ADM crops of real photographs and on
//! the spec §10b test image. Error = max|Δ| / max|ref| ≤ 1e-4 (fp32).

mod common;

use common::{fixture, load};
use maetok_teachers::hog::{hog_chw, hog_rgb8, spec_check_image, DIM};
use safetensors::SafeTensors;

fn reference() -> (Vec<u8>, Vec<String>) {
    let bytes = std::fs::read(fixture("photos/hog.safetensors")).expect("hog fixture");
    let names = SafeTensors::deserialize(&bytes)
        .unwrap()
        .names()
        .into_iter()
        .map(String::from)
        .collect();
    (bytes, names)
}

fn tensor(bytes: &[u8], name: &str) -> Vec<f32> {
    let st = SafeTensors::deserialize(bytes).unwrap();
    let t = st.tensor(name).unwrap();
    assert_eq!(t.shape(), &[256, DIM]);
    t.data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn rel_err(ours: &[f32], reference: &[f32]) -> f64 {
    let max_ref = reference.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
    let max_d = ours
        .iter()
        .zip(reference)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs())) as f64;
    max_d / max_ref
}

#[test]
fn hog_matches_official_code_on_photographs() {
    let (bytes, names) = reference();
    let mut checked = 0;
    for name in names.iter().filter(|n| *n != "spec_sincos") {
        let crop = load(&fixture(&format!("photos/{name}.adm256.png")));
        let ours = hog_rgb8(&crop.data, crop.width, crop.height).unwrap();
        let err = rel_err(&ours, &tensor(&bytes, name));
        println!("{name}: max|Δ|/max|ref| = {err:.2e}");
        assert!(
            err <= 1e-4,
            "{name}: HOG differs from the official code by {err:.2e}"
        );
        checked += 1;
    }
    assert!(checked >= 6);
}

#[test]
fn hog_matches_official_code_on_spec_image() {
    let (bytes, _) = reference();
    let ours = hog_chw(&spec_check_image(256), 256, 256).unwrap();
    let err = rel_err(&ours, &tensor(&bytes, "spec_sincos"));
    println!("spec image: max|Δ|/max|ref| = {err:.2e}");
    assert!(err <= 1e-4);
}
