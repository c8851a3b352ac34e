//! Parity with the official SiT code (author commit f4d60a0) on tiny random-weight models
//! whose every block matters: `SiT.forward` (`modelling/sit.py`), one `SILoss` step's loss
//! and every gradient (`losses/sit_loss.py`), and the `euler_sampler` /
//! `euler_maruyama_sampler` outputs (`modelling/samplers.py`), all within
//! max|Δ|/max|ref| ≤ 1e-4 in fp32. Fixtures: `tests/fixtures/gen/gen_sit.py`.
//!
//! LightningDiT (`hustvl/LightningDiT` at 2725fed, made 1-D as `gen_lightningdit.py`
//! describes): the forward of three flag sets, one `Transport.training_losses` step with
//! the cosine term (loss and every gradient) through maetok's t = 1 noise boundary.

use std::collections::HashMap;
use std::path::PathBuf;

use maetok_diffusion::{
    sample, velocity_mse, Guidance, PathKind, SamplerKind, SamplerSpec, TimeSampling, TrainingPair,
};
use maetok_models::sit::{Sit, SitConfig};
use tch::{Kind, Tensor};

fn fixture(family: &str, name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(family)
        .join(name)
}

fn case(name: &str) -> PathBuf {
    fixture("sit", name)
}

fn read_map(path: &std::path::Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(path)
        .unwrap()
        .into_iter()
        .collect()
}

fn runs(name: &str) -> HashMap<String, Tensor> {
    read_map(&case(name).join("runs.safetensors"))
}

fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    let a = a.to_kind(Kind::Double);
    let b = b.to_kind(Kind::Double);
    f64::try_from((&a - &b).abs().max()).unwrap() / f64::try_from(b.abs().max()).unwrap()
}

#[test]
fn forward_matches_the_official_sit() {
    for name in ["tiny_a", "tiny_b"] {
        let model = Sit::load(&case(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let r = runs(name);
        let out = tch::no_grad(|| model.forward(&r["forward.x"], &r["forward.t"], &r["forward.y"]));
        let e = rel_err(&out, &r["forward.out"]);
        println!("{name} forward {e:.2e}");
        assert!(e <= 1e-4, "{name}: forward {e:.3e}");
        // The fixed position table we compute is the official one.
        let fresh = Sit::fresh(model.config.clone()).unwrap();
        assert!(
            rel_err(&fresh.pos_embed, &model.pos_embed) < 1e-6,
            "{name}: pos_embed"
        );
    }
}

/// One official `SILoss` step (the linear path with logit-normal t, the cosine path with
/// uniform t) from the draws it made: the loss and the gradient of every parameter.
#[test]
fn one_training_step_matches_the_official_loss_and_gradients() {
    let model = Sit::load(&case("tiny_a")).unwrap();
    let r = runs("tiny_a");
    let (x0, y) = (&r["loss.x0"], &r["loss.labels"]);
    for (path, time) in [
        (PathKind::Linear, TimeSampling::LogitNormal),
        (PathKind::Cosine, TimeSampling::Uniform),
    ] {
        let key = if path == PathKind::Linear {
            "linear"
        } else {
            "cosine"
        };
        let t = time.time(&r[&format!("loss.{key}.time_draw")], path);
        let pair = TrainingPair::new(path, x0, &r[&format!("loss.{key}.noise")], &t);
        let mut params = model.vars.params(|_| true);
        for (_, p) in params.iter_mut() {
            let _ = p.set_requires_grad(true);
            p.zero_grad();
        }
        let out = model.forward(&pair.input, &t, y);
        let loss = velocity_mse(&out, &pair.target).mean(Kind::Float);
        loss.backward();
        let e = rel_err(&loss.reshape([1]), &r[&format!("loss.{key}.loss")]);
        assert!(e <= 1e-5, "{key}: loss {e:.3e}");
        let mut worst = (0.0, String::new());
        for (name, p) in &params {
            let want = &r[&format!("loss.{key}.grad.{name}")];
            let e = rel_err(&p.grad(), want);
            if e > worst.0 {
                worst = (e, name.clone());
            }
        }
        println!(
            "{key}: loss {e:.2e}, {} gradients, worst {:.2e} ({})",
            params.len(),
            worst.0,
            worst.1
        );
        assert!(
            worst.0 <= 1e-4,
            "{key}: gradient of {} {:.3e}",
            worst.1,
            worst.0
        );
        for (_, p) in &params {
            let _ = p.set_requires_grad(false);
        }
    }
}

#[test]
fn samplers_match_the_official_euler_heun_and_euler_maruyama() {
    let model = Sit::load(&case("tiny_b")).unwrap();
    let null = model.config.null_label().unwrap();
    let r = runs("tiny_b");
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(case("tiny_b").join("cases.json")).unwrap())
            .unwrap();
    let cases = cases["samples"].as_array().unwrap();
    assert_eq!(cases.len(), 6);
    let mut outs = Vec::new();
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let spec = SamplerSpec {
            kind: SamplerKind::parse(c["sampler"].as_str().unwrap()).unwrap(),
            steps: c["steps"].as_u64().unwrap() as usize,
            guidance: Guidance {
                scale: c["cfg_scale"].as_f64().unwrap(),
                low: c["interval"][0].as_f64().unwrap(),
                high: c["interval"][1].as_f64().unwrap(),
            },
            path: PathKind::parse(c["path"].as_str().unwrap()).unwrap(),
        };
        let step_noise = r.get(&format!("sample.{name}.step_noise"));
        let mut forward = |x: &Tensor, t: &Tensor, y: &Tensor| model.forward(x, t, y);
        let out = sample(
            &spec,
            &mut forward,
            &r["sample.noise"],
            &r["sample.labels"],
            null,
            Kind::Float,
            &mut |i| step_noise.expect("an SDE case").get(i as i64),
        )
        .unwrap();
        let want = &r[&format!("sample.{name}.out")];
        let e = rel_err(&out, want);
        println!("{name}: {e:.2e}");
        assert!(e <= 1e-4, "{name}: {e:.3e}");
        outs.push((name.to_string(), out));
    }
    // The cases differ from each other (guidance and noise change the result).
    for (i, (a, x)) in outs.iter().enumerate() {
        for (b, y) in &outs[i + 1..] {
            assert!(rel_err(x, y) > 1e-3, "{a} and {b} agree");
        }
    }
}

/// A folder written here is the official layout: the same tensors bit for bit and the same
/// `config.json` text `save_pretrained` wrote (the generator's `--check` loads ours with the
/// official `SiT.from_pretrained`).
#[test]
fn save_writes_the_official_layout_back() {
    let tmp = tempfile::tempdir().unwrap();
    // MAETOK_SIT_SAVED=DIR keeps the folders, for `gen_sit.py --check DIR/tiny_a` (the
    // official `SiT.from_pretrained` loading ours).
    let root = std::env::var_os("MAETOK_SIT_SAVED").map_or(tmp.path().to_path_buf(), PathBuf::from);
    for name in ["tiny_a", "tiny_b"] {
        let model = Sit::load(&case(name)).unwrap();
        let dir = root.join(name);
        model.save(&dir).unwrap();
        let theirs = std::fs::read_to_string(case(name).join("config.json")).unwrap();
        let ours = std::fs::read_to_string(dir.join("config.json")).unwrap();
        assert_eq!(ours.trim_end(), theirs.trim_end(), "{name}: config.json");
        let a: HashMap<String, Tensor> =
            Tensor::read_safetensors(case(name).join("model.safetensors"))
                .unwrap()
                .into_iter()
                .collect();
        let b: HashMap<String, Tensor> = Tensor::read_safetensors(dir.join("model.safetensors"))
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(a.len(), b.len(), "{name}: tensor count");
        for (k, t) in &a {
            assert!(t.equal(&b[k]), "{name}: {k}");
        }
        let again = Sit::load(&dir).unwrap();
        assert_eq!(again.config, model.config);
    }
}

#[test]
fn presets_have_the_papers_sizes() {
    let xl = SitConfig::preset("SiT-XL/1", 128, 32, 1000).unwrap();
    // Spec §10b / §7.1.
    assert_eq!(xl.num_values(), 675_000_608);
    let gflops = xl.flops_per_forward() / 1e9;
    assert!((gflops - 116.7).abs() < 0.05, "{gflops}");
    let l = SitConfig::preset("SiT-L/1", 128, 32, 1000).unwrap();
    assert!(
        (l.num_values() as f64 / 1e6 - 458.0).abs() < 1.0,
        "{}",
        l.num_values()
    );
    // The count formula is the built model's.
    for name in ["SiT-mini/1", "SiT-T/1"] {
        let mut cfg = SitConfig::preset(name, 16, 8, 10).unwrap();
        for qk in [false, true] {
            cfg.qk_norm = qk;
            let model = Sit::fresh(cfg.clone()).unwrap();
            let n: i64 = model
                .vars
                .named()
                .iter()
                .map(|(_, t)| t.numel() as i64)
                .sum();
            assert_eq!(n, cfg.num_values(), "{name} qk_norm {qk}");
        }
    }
    // adaLN-Zero: a fresh SiT outputs exactly 0.
    let model = Sit::fresh(SitConfig::preset("SiT-mini/1", 16, 8, 10).unwrap()).unwrap();
    let x = Tensor::randn([2, 16, 8], (Kind::Float, tch::Device::Cpu));
    let out = model.forward(
        &x,
        &Tensor::from_slice(&[0.3f32, 0.9]),
        &Tensor::from_slice(&[1i64, 10]),
    );
    assert_eq!(f64::try_from(out.abs().max()).unwrap(), 0.0);
}

#[test]
fn a_checkpoint_with_unknown_or_missing_keys_is_refused_with_names() {
    let tmp = tempfile::tempdir().unwrap();
    let src = case("tiny_a");
    let mut sd: Vec<(String, Tensor)> = Tensor::read_safetensors(src.join("model.safetensors"))
        .unwrap()
        .into_iter()
        .collect();
    std::fs::copy(src.join("config.json"), tmp.path().join("config.json")).unwrap();
    sd.push((
        "projectors.0.weight".into(),
        Tensor::zeros([2], (Kind::Float, tch::Device::Cpu)),
    ));
    Tensor::write_safetensors(&sd, tmp.path().join("model.safetensors")).unwrap();
    let err = Sit::load(tmp.path()).err().unwrap().to_string();
    assert!(err.contains("projectors.0.weight"), "{err}");
    sd.retain(|(k, _)| k != "projectors.0.weight" && k != "final_layer.linear.bias");
    Tensor::write_safetensors(&sd, tmp.path().join("model.safetensors")).unwrap();
    let err = Sit::load(tmp.path()).err().unwrap().to_string();
    assert!(err.contains("final_layer.linear.bias"), "{err}");
    // A 2-D SiT is named as unsupported, not mis-read.
    let cfg = std::fs::read_to_string(src.join("config.json"))
        .unwrap()
        .replace("\"vae_1d\": true", "\"vae_1d\": false");
    std::fs::write(tmp.path().join("config.json"), cfg).unwrap();
    let err = Sit::load(tmp.path()).err().unwrap().to_string();
    assert!(err.contains("vae_1d"), "{err}");
}

mod lightningdit {
    use super::*;
    use maetok_diffusion::cosine_direction;
    use maetok_models::denoiser::Denoiser;
    use maetok_models::lightningdit::{LightningDit, LightningDitConfig};

    const CASES: [&str; 3] = ["tiny_a", "tiny_b", "tiny_c"];

    fn load(name: &str) -> LightningDit {
        match Denoiser::load(&fixture("lightningdit", name)) {
            Ok(Denoiser::LightningDit(m)) => m,
            Ok(_) => panic!("{name}: read as a SiT"),
            Err(e) => panic!("{name}: {e}"),
        }
    }

    fn runs(name: &str) -> HashMap<String, Tensor> {
        read_map(&fixture("lightningdit", name).join("runs.safetensors"))
    }

    /// The official forward (its convention: t = 0 noise) and ours through the boundary:
    /// at t' = 1 − t, maetok's velocity is the official one negated.
    #[test]
    fn forward_matches_the_official_lightningdit() {
        for name in CASES {
            let model = load(name);
            let r = runs(name);
            let (x, t, y) = (&r["forward.x"], &r["forward.t"], &r["forward.y"]);
            let native = tch::no_grad(|| model.forward_native(x, t, y));
            let e = rel_err(&native, &r["forward.out"]);
            let ours = tch::no_grad(|| model.forward(x, &(t.neg() + 1.0), y));
            let e_ours = rel_err(&ours.neg(), &r["forward.out"]);
            println!("lightningdit {name} forward {e:.2e}, through the boundary {e_ours:.2e}");
            assert!(e <= 1e-4 && e_ours <= 1e-4, "{name}: {e:.3e} {e_ours:.3e}");
            // Our fresh tables are the generator's: MAETok's 1-D sinusoid, 1-D RoPE.
            let fresh = LightningDit::fresh(model.config.clone()).unwrap();
            assert!(rel_err(&fresh.pos_embed, &model.pos_embed) < 1e-6, "{name}");
            if let (Some(a), Some(b)) = (&fresh.rope, &model.rope) {
                assert!(rel_err(&a.cos, &b.cos) < 1e-6 && rel_err(&a.sin, &b.sin) < 1e-6);
            }
        }
    }

    /// One official training step (`use_lognorm`, `use_cosine_loss`; `mse + cos` as
    /// `train.py` backpropagates) given its draws, computed in maetok's convention:
    /// t = 1 − t_official, the same noise and data, the loop's `velocity_mse` and
    /// `cosine_direction`.
    #[test]
    fn one_training_step_matches_the_official_loss_and_gradients() {
        let model = load("tiny_a");
        let r = runs("tiny_a");
        let t = r["loss.t_native"].neg() + 1.0;
        let pair = TrainingPair::new(PathKind::Linear, &r["loss.data"], &r["loss.noise"], &t);
        let mut params = model.vars.params(|_| true);
        for (_, p) in params.iter_mut() {
            let _ = p.set_requires_grad(true);
            p.zero_grad();
        }
        let out = model.forward(&pair.input, &t, &r["loss.labels"]);
        let mse = velocity_mse(&out, &pair.target).mean(Kind::Float);
        let cos = cosine_direction(&out, &pair.target).mean(Kind::Float);
        (&mse + &cos).backward();
        let e_mse = rel_err(&mse.reshape([1]), &r["loss.mse"]);
        let e_cos = rel_err(&cos.reshape([1]), &r["loss.cos"]);
        let mut worst = (0.0f64, String::new());
        let mut n = 0;
        for (k, p) in &params {
            let e = rel_err(&p.grad(), &r[&format!("loss.grad.{k}")]);
            if e > worst.0 {
                worst = (e, k.clone());
            }
            n += 1;
        }
        println!(
            "lightningdit loss: mse {e_mse:.2e}, cos {e_cos:.2e}, worst of {n} gradients \
             {:.2e} ({})",
            worst.0, worst.1
        );
        assert!(e_mse <= 1e-4 && e_cos <= 1e-4, "{e_mse:.3e} {e_cos:.3e}");
        assert!(worst.0 <= 1e-4, "{}: {:.3e}", worst.1, worst.0);
        assert_eq!(n, r.keys().filter(|k| k.starts_with("loss.grad.")).count());
    }

    /// A folder written here holds the same tensors and config text (the generator's
    /// `--check` loads ours into the official module).
    #[test]
    fn save_writes_the_fixture_layout_back() {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::env::var_os("MAETOK_LIGHTNINGDIT_SAVED")
            .map_or(tmp.path().to_path_buf(), PathBuf::from);
        for name in CASES {
            let model = load(name);
            let dir = root.join(name);
            model.save(&dir).unwrap();
            let src = fixture("lightningdit", name);
            let theirs = std::fs::read_to_string(src.join("config.json")).unwrap();
            let ours = std::fs::read_to_string(dir.join("config.json")).unwrap();
            assert_eq!(ours.trim_end(), theirs.trim_end(), "{name}: config.json");
            let (a, b) = (
                read_map(&src.join("model.safetensors")),
                read_map(&dir.join("model.safetensors")),
            );
            assert_eq!(a.len(), b.len(), "{name}: tensor count");
            for (k, t) in &a {
                assert!(t.equal(&b[k]), "{name}: {k}");
            }
        }
    }

    /// LightningDiT-XL/1 on 128 × 32 (spec §7.5): SwiGLU hidden int(2/3 · 4608) = 3072;
    /// the count formula is the built model's for every flag set; a fresh model outputs 0.
    #[test]
    fn presets_and_counts() {
        let xl = LightningDitConfig::preset("LightningDiT-XL/1", 128, 32, 1000).unwrap();
        assert_eq!(xl.mlp_hidden(), 3072);
        assert!(
            (xl.num_values() as f64 / 1e6 - 675.4).abs() < 0.5,
            "{}",
            xl.num_values()
        );
        for name in CASES {
            let cfg = load(name).config;
            let m = LightningDit::fresh(cfg.clone()).unwrap();
            let n: i64 = m.vars.named().iter().map(|(_, t)| t.numel() as i64).sum();
            assert_eq!(n, cfg.num_values(), "{name}");
            let x = Tensor::randn(
                [2, cfg.input_size, cfg.in_channels],
                (Kind::Float, tch::Device::Cpu),
            );
            let out = m.forward(
                &x,
                &Tensor::from_slice(&[0.3f32, 0.9]),
                &Tensor::from_slice(&[1i64, 0]),
            );
            assert_eq!(f64::try_from(out.abs().max()).unwrap(), 0.0, "{name}");
        }
        // A SiT loader refuses a LightningDiT folder by name, and vice versa reads right.
        let err = Sit::load(&fixture("lightningdit", "tiny_a"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("LightningDiT"), "{err}");
        assert!(matches!(
            Denoiser::load(&case("tiny_a")),
            Ok(Denoiser::Sit(_))
        ));
    }
}
