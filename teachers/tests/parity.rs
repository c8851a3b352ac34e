//! Parity with the PyTorch references (timm 1.0.12 building the model at another patch size
//! / grid from the downloaded weights, and HF transformers' own forward at the native patch
//! size) on tiny random-weight DINOv2 / SigLIP / CLIP towers in every layout we read.
//! Fixtures: `tests/fixtures/gen/gen_teachers.py`.

use std::path::PathBuf;

use maetok_nn::AttentionImpl;
use maetok_teachers::teacher::VitTeacher;
use maetok_teachers::{build, Family, TeacherSpec};
use tch::Tensor;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/teachers")
}

fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    let d = f64::try_from((a - b).abs().max()).unwrap();
    d / f64::try_from(b.abs().max()).unwrap()
}

struct Run {
    case: String,
    teacher: String,
    run: String,
    resolution: (i64, i64),
    patch: i64,
}

fn runs() -> Vec<Run> {
    let text = std::fs::read_to_string(fixtures().join("cases.json")).unwrap();
    let meta: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for c in meta["cases"].as_array().unwrap() {
        for r in c["runs"].as_array().unwrap() {
            let res = r["resolution"].as_array().unwrap();
            out.push(Run {
                case: c["case"].as_str().unwrap().into(),
                teacher: c["teacher"].as_str().unwrap().into(),
                run: r["run"].as_str().unwrap().into(),
                resolution: (res[0].as_i64().unwrap(), res[1].as_i64().unwrap()),
                patch: r["patch_size"].as_i64().unwrap(),
            });
        }
    }
    out
}

fn run_named(case: &str, run: &str) -> Run {
    runs()
        .into_iter()
        .find(|r| r.case == case && r.run == run)
        .unwrap()
}

fn load_run(r: &Run) -> (Tensor, Tensor) {
    let tensors =
        Tensor::read_safetensors(fixtures().join(&r.case).join("runs.safetensors")).unwrap();
    let get = |k: &str| {
        tensors
            .iter()
            .find(|(n, _)| n == k)
            .unwrap()
            .1
            .shallow_clone()
    };
    (
        get(&format!("{}.images", r.run)),
        get(&format!("{}.expected", r.run)),
    )
}

fn spec(r: &Run) -> TeacherSpec {
    let mut spec = TeacherSpec::new(
        &r.teacher,
        Some(fixtures().join(&r.case).join("model.safetensors")),
    );
    spec.resolution = r.resolution;
    spec.patch_size = r.patch;
    spec
}

#[test]
fn every_layout_matches_its_reference() {
    let all = runs();
    assert!(
        all.len() >= 20,
        "fixture list looks truncated: {} runs",
        all.len()
    );
    let mut report = Vec::new();
    for r in &all {
        let (images, expected) = load_run(r);
        let teacher = build(&spec(r)).unwrap_or_else(|e| panic!("{}: {e}", r.case));
        let got = teacher.features(&images).unwrap();
        assert_eq!(got.size(), expected.size(), "{}/{}", r.case, r.run);
        let err = rel_err(&got, &expected);
        report.push(format!("{}/{}: {err:.2e}", r.case, r.run));
        assert!(
            err <= 1e-4,
            "{}/{}: max|Δ|/max|ref| = {err:.3e}",
            r.case,
            r.run
        );
    }
    println!("{}", report.join("\n"));
}

#[test]
fn explicit_attention_matches_sdpa() {
    let r = run_named("dinov2_timm", "p16_96");
    let (images, expected) = load_run(&r);
    let mut teacher = VitTeacher::load(Family::Dinov2, &spec(&r)).unwrap();
    teacher.model_mut().set_attention(AttentionImpl::Explicit);
    use maetok_teachers::Teacher;
    let got = teacher.features(&images).unwrap();
    assert!(rel_err(&got, &expected) <= 1e-4);
}

/// The bf16 path (weights and input cast, output back to f32) that GPUs use by default,
/// exercised on the CPU: close to the fp32 reference, not equal.
#[test]
fn bf16_compute_stays_close_to_fp32() {
    let r = run_named("siglip_hf", "p16_96");
    let (images, expected) = load_run(&r);
    let mut spec = spec(&r);
    spec.kind = tch::Kind::BFloat16;
    let got = build(&spec).unwrap().features(&images).unwrap();
    assert_eq!(got.kind(), tch::Kind::Float);
    let err = rel_err(&got, &expected);
    assert!(err > 0.0 && err < 5e-2, "bf16 relative error {err}");
    let cos = Tensor::cosine_similarity(&got.flatten(0, 1), &expected.flatten(0, 1), 1, 1e-8).min();
    assert!(f64::try_from(cos).unwrap() > 0.999);
}
