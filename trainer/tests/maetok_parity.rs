//! Parity with the official PyTorch `AEModel` (author commit f4d60a0) on tiny random-weight
//! checkpoints in the released layout, both pixel-decoder variants: encode, decode and
//! reconstruct within max|Δ|/max|ref| ≤ 1e-4 (fp32). Fixtures: `tests/fixtures/gen/gen_maetok.py`.

use std::path::{Path, PathBuf};

use maetok_models::maetok::{AeConfig, AeModel};
use tch::Tensor;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/maetok")
}

/// A fixture checkpoint. The tiny fixtures re-register the official timm names with other
/// sizes; their heads (which tensor shapes cannot tell) are in arch.json.
fn fixture_model(dir: &Path) -> AeModel {
    let arch: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("arch.json")).unwrap()).unwrap();
    let mut cfg = AeConfig::load(&dir.join("config.json")).unwrap();
    cfg.enc_num_heads = arch["encoder"]["num_heads"].as_i64();
    cfg.dec_num_heads = arch["decoder"]["num_heads"].as_i64();
    AeModel::load_with_config(dir, cfg).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    f64::try_from((a - b).abs().max()).unwrap() / f64::try_from(b.abs().max()).unwrap()
}

#[test]
fn encode_decode_reconstruct_match_the_official_model() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("runs.safetensors").is_file())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 2,
        "expected the MoVQ and plain cases, found {cases:?}"
    );
    let mut report = Vec::new();
    for dir in &cases {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let model = fixture_model(dir);
        let runs = Tensor::read_safetensors(dir.join("runs.safetensors")).unwrap();
        let get = |k: &str| {
            runs.iter()
                .find(|(n, _)| n == k)
                .map(|(_, t)| t.shallow_clone())
        };
        let images = get("images").unwrap();
        tch::no_grad(|| {
            let latent = model.encode(&images, None);
            let e = rel_err(&latent, &get("latent").unwrap());
            report.push(format!("{name} encode {e:.2e}"));
            assert!(e <= 1e-4, "{name}: encode {e:.3e}");
            let decoded = model.decode(&get("latent").unwrap());
            let e = rel_err(&decoded, &get("decoded").unwrap());
            report.push(format!("{name} decode {e:.2e}"));
            assert!(e <= 1e-4, "{name}: decode {e:.3e}");
            // The official forward equals decode(encode(x)) (the generator asserts it), so
            // `decoded` is also the reference of a full reconstruction.
            if let Some(want) = get("reconstructed").or_else(|| get("decoded")) {
                let e = rel_err(&model.reconstruct(&images), &want);
                report.push(format!("{name} reconstruct {e:.2e}"));
                assert!(e <= 1e-4, "{name}: reconstruct {e:.3e}");
            }
        });
    }
    println!("{}", report.join("\n"));
}

/// Written back in the released layout, each fixture checkpoint has the same tensors, bit for
/// bit, under the same names, and its config keeps every official field.
#[test]
fn save_writes_the_released_layout_back() {
    for case in ["movq_64", "plain_64"] {
        let dir = fixtures().join(case);
        let model = fixture_model(&dir);
        let out = tempfile::tempdir().unwrap();
        model.save(out.path()).unwrap();
        let mut original = Tensor::read_safetensors(dir.join("model.safetensors")).unwrap();
        let mut written = Tensor::read_safetensors(out.path().join("model.safetensors")).unwrap();
        original.sort_by(|a, b| a.0.cmp(&b.0));
        written.sort_by(|a, b| a.0.cmp(&b.0));
        let names = |v: &[(String, Tensor)]| v.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        assert_eq!(names(&written), names(&original), "{case}");
        for ((k, a), (_, b)) in written.iter().zip(&original) {
            assert!(a.equal(b), "{case}: {k} differs");
        }
        let official: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap())
                .unwrap();
        let ours: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.path().join("config.json")).unwrap())
                .unwrap();
        for (k, v) in official.as_object().unwrap() {
            assert_eq!(&ours[k], v, "{case}: config field {k}");
        }
    }
}

/// The bf16 path the GPU uses by default, on the CPU: close to fp32, not equal.
#[test]
fn bf16_model_stays_close_to_fp32() {
    let dir = fixtures().join("movq_64");
    let mut model = fixture_model(&dir);
    model.to(tch::Device::Cpu, tch::Kind::BFloat16);
    let runs = Tensor::read_safetensors(dir.join("runs.safetensors")).unwrap();
    let get = |k: &str| runs.iter().find(|(n, _)| n == k).unwrap().1.shallow_clone();
    tch::no_grad(|| {
        let z = model.encode(&get("images"), None);
        assert_eq!(z.kind(), tch::Kind::Float);
        let e = rel_err(&z, &get("latent"));
        assert!(e > 0.0 && e < 0.1, "bf16 encode {e}");
        let e = rel_err(&model.decode(&get("latent")), &get("decoded"));
        assert!(e > 0.0 && e < 0.1, "bf16 decode {e}");
    });
}
