//! `maetok teacher features` end to end: real photographs, ADM crops, a tiny random DINOv2 in
//! HF layout resampled 14 → 16 px patches, safetensors out with the keys in the metadata.

use maetok_e2e::{fixtures, photo_folder, run, run_ok};
use maetok_teachers::{build, TeacherSpec};
use tch::Tensor;

#[test]
fn features_match_the_library_on_pillow_crops() {
    let dir = tempfile::tempdir().unwrap();
    let (input, stems) = photo_folder(dir.path());
    let weights = fixtures().join("teachers/dinov2_hf/model.safetensors");
    let out = dir.path().join("feats.safetensors");
    run_ok(&[
        "teacher",
        "features",
        "--teacher",
        "dinov2",
        "--weights",
        weights.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--batch-size",
        "3",
    ]);

    let bytes = std::fs::read(&out).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().as_ref().unwrap();
    let keys: Vec<String> = serde_json::from_str(&meta["keys"]).unwrap();
    assert_eq!(keys, stems, "sorted keys in the metadata");
    let teacher: serde_json::Value = serde_json::from_str(&meta["teacher"]).unwrap();
    assert_eq!(teacher["layout"], "hf_dinov2");
    assert_eq!(teacher["weights_sha256"].as_str().unwrap().len(), 64);
    let got = Tensor::read_safetensors(&out).unwrap().remove(0).1;
    assert_eq!(got.size(), [stems.len() as i64, 256, 32]);

    // The same teacher on Pillow's ADM crops of the same files.
    let t = build(&TeacherSpec::new("dinov2", Some(weights))).unwrap();
    for (i, stem) in stems.iter().enumerate() {
        let png = image::open(fixtures().join(format!("photos/{stem}.adm256.png")))
            .unwrap()
            .to_rgb8();
        let x = Tensor::from_slice(png.as_raw()).reshape([1, 256, 256, 3]);
        let want = t.features(&x).unwrap();
        let d = f64::try_from((got.get(i as i64) - want.get(0)).abs().max()).unwrap();
        assert!(d < 1e-5, "{stem}: {d}");
    }
}

#[test]
fn bad_teacher_arguments_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixtures().join("photos");
    let out = dir.path().join("f.safetensors");
    let o = run(&[
        "teacher",
        "features",
        "--teacher",
        "dinov2",
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("no weight file") && err.contains("dinov2"),
        "{err}"
    );
    let o = run(&[
        "teacher",
        "features",
        "--teacher",
        "dinov2",
        "--weights",
        "/nonexistent/model.safetensors",
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--device",
        "cuda:7",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("cuda:7"), "{err}");
    assert!(!out.exists());
}
