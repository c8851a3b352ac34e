//! PSNR / SSIM equal scikit-image's as the reference evaluation calls them, and the standard
//! SSIM (`data_range = 1.0`) (fixtures: `tests/fixtures/gen/gen_metrics.py`).

use std::path::PathBuf;

use maetok_eval::reconstruction::{psnr, ssim, ssim_with_range};

#[test]
fn psnr_and_ssim_match_scikit_image() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/metrics");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()).unwrap();
    let cases = meta["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for c in cases {
        let i = c["pair"].as_u64().unwrap();
        let gt = image::open(dir.join(format!("pair-{i}-gt.png")))
            .unwrap()
            .to_rgb8();
        let rec = image::open(dir.join(format!("pair-{i}-rec.png")))
            .unwrap()
            .to_rgb8();
        let (w, h) = gt.dimensions();
        let p = psnr(gt.as_raw(), rec.as_raw());
        let s = ssim(rec.as_raw(), gt.as_raw(), w as usize, h as usize);
        let (wp, ws) = (c["psnr"].as_f64().unwrap(), c["ssim"].as_f64().unwrap());
        assert!((p - wp).abs() < 1e-9, "pair {i}: psnr {p} vs {wp}");
        assert!((s - ws).abs() < 1e-9, "pair {i}: ssim {s} vs {ws}");
        let st = ssim_with_range(rec.as_raw(), gt.as_raw(), w as usize, h as usize, 1.0);
        let wst = c["ssim_standard"].as_f64().unwrap();
        assert!(
            (st - wst).abs() < 1e-9,
            "pair {i}: standard ssim {st} vs {wst}"
        );
    }
}
