//! One generator step and one discriminator step against the reference `VQLoss`
//! (fixture `tests/fixtures/gen/gen_step.py`): pixel MSE, LPIPS, the DINO discriminator's
//! hinge loss with the adaptive weight, then hinge + LeCAM + consistency, all with the
//! reference's own DiffAugment draws replayed. Checks each value, the generator's gradients
//! (on the `to_pixel`-like weight and its input), every discriminator head gradient, LeCAM's
//! EMAs and the heads' state after the forwards (power iteration, BatchNorm statistics).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;

use maetok_teachers::lpips::Lpips;
use maetok_trainer::losses::diffaug::Draws;
use maetok_trainer::losses::disc::Discriminator;
use maetok_trainer::losses::gan::{discriminator_loss, LeCam};
use maetok_trainer::train::config::TrainConfig;
use maetok_trainer::train::objective::pixel_objective;
use maetok_trainer::train::rng::SplitMix;
use tch::{Kind, Tensor};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn read(name: &str) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(fixtures().join("step").join(name))
        .unwrap()
        .into_iter()
        .collect()
}

/// The reference's recorded `torch.rand` / `torch.randint` results, in order.
struct Replay(VecDeque<(String, Vec<f64>)>);

impl Replay {
    fn next(&mut self, kind: &str, n: usize) -> Vec<f64> {
        let (k, v) = self
            .0
            .pop_front()
            .expect("more draws than the reference made");
        assert_eq!(
            (k.as_str(), v.len()),
            (kind, n),
            "draw order differs from the reference"
        );
        v
    }
}

impl Draws for Replay {
    fn coin(&mut self) -> f64 {
        self.next("rand", 1)[0]
    }
    fn uniform(&mut self, n: usize) -> Vec<f64> {
        self.next("rand", n)
    }
    fn int(&mut self, lo: i64, hi: i64, n: usize) -> Vec<i64> {
        let v: Vec<i64> = self.next("randint", n).iter().map(|&x| x as i64).collect();
        assert!(
            v.iter().all(|&x| (lo..hi).contains(&x)),
            "{v:?} outside [{lo}, {hi})"
        );
        v
    }
}

fn rel(got: &Tensor, want: &Tensor) -> f64 {
    let got = got.to_kind(Kind::Double).reshape([-1]);
    let want = want.to_kind(Kind::Double).reshape([-1]);
    let d = f64::try_from((&got - &want).abs().max()).unwrap();
    d / f64::try_from(want.abs().max()).unwrap().max(1e-30)
}

#[test]
fn one_step_matches_the_reference_vq_loss() {
    let inputs = read("inputs.safetensors");
    let want = read("expected.safetensors");
    let draws: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("step/draws.json")).unwrap())
            .unwrap();
    let mut replay = Replay(
        draws["draws"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["kind"].as_str().unwrap().to_string(),
                    d["values"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_f64().unwrap())
                        .collect(),
                )
            })
            .collect(),
    );

    let cfg = TrainConfig::parse(
        r#"
[data]
shards = "unused"
[losses]
lpips_vgg = "v"
lpips_heads = "h"
perceptual_warmup = 0
lpips_dropout = false
[gan]
backbone = "d"
backbone_heads = 2
disc_start = 0
"#,
    )
    .unwrap();
    let lp = fixtures().join("lpips");
    let lpips = Lpips::load(&lp.join("vgg.safetensors"), &lp.join("heads.safetensors")).unwrap();
    let disc = Discriminator::new(
        &fixtures().join("step/dino.safetensors"),
        2,
        tch::Device::Cpu,
    )
    .unwrap();
    disc.load_state(read("heads_init.safetensors")).unwrap();
    let mut d_params = disc.params();
    for (_, p) in &d_params {
        let _ = p.set_requires_grad(true);
    }

    // Generator step: recon = unpatchify(h Wᵀ + b).
    let (x, b) = (&inputs["x"], &inputs["b"]);
    let h = inputs["h"].set_requires_grad(true);
    let w = inputs["W"].set_requires_grad(true);
    let recon = (h.matmul(&w.tr()) + b)
        .reshape([2, 4, 4, 16, 16, 3])
        .permute([0, 5, 1, 3, 2, 4])
        .reshape([2, 3, 64, 64]);
    let mut crop = SplitMix::new(0);
    let obj = pixel_objective(
        x,
        &recon,
        &cfg,
        0,
        Some(&lpips),
        Some(&disc),
        &w,
        &mut replay,
        &mut crop,
        &[0, 1],
        &mut one_process(),
    )
    .unwrap();
    let term = |k: &str| {
        obj.terms
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, t)| t.detach())
            .unwrap()
    };
    let mut report = Vec::new();
    for (name, got, exp, tol) in [
        ("rec", term("rec"), &want["rec"], 1e-6),
        ("lpips", term("lpips"), &want["lpips"], 1e-5),
        ("gen_adv", term("gan_g"), &want["gen_adv"], 1e-4),
        ("loss_g", obj.loss.detach(), &want["loss_g"], 1e-4),
    ] {
        let e = rel(&got, exp);
        report.push(format!("{name} {e:.1e}"));
        assert!(e <= tol, "{name}: {got} vs {exp} ({e:.2e})");
    }
    let aw = obj
        .gan_log
        .iter()
        .find(|(k, _)| k == "adaptive_weight")
        .unwrap()
        .1;
    let e = rel(&Tensor::from_slice(&[aw]), &want["adaptive_weight"]);
    report.push(format!("adaptive_weight {e:.1e}"));
    assert!(
        e <= 1e-4,
        "adaptive weight {aw} vs {} ({e:.2e})",
        want["adaptive_weight"]
    );
    obj.loss.backward();
    for (name, got, exp) in [
        ("grad_W", w.grad(), &want["grad_W"]),
        ("grad_h", h.grad(), &want["grad_h"]),
    ] {
        let e = rel(&got, exp);
        report.push(format!("{name} {e:.1e}"));
        assert!(e <= 1e-4, "{name}: {e:.2e}");
    }
    assert_eq!(
        replay.0.len(),
        draws["draws"].as_array().unwrap().len()
            - draws["generator_draws"].as_u64().unwrap() as usize,
        "the generator step used as many draws as the reference"
    );

    // Discriminator step on the same batch.
    for (_, p) in d_params.iter_mut() {
        p.zero_grad();
    }
    let mut lecam = LeCam::default();
    let d = discriminator_loss(
        &disc,
        x,
        &recon,
        &cfg.gan,
        1,
        &mut lecam,
        &mut replay,
        &mut crop,
        &mut one_process(),
    )
    .unwrap();
    let e = rel(&d.loss.detach(), &want["loss_d"]);
    report.push(format!("loss_d {e:.1e}"));
    assert!(
        e <= 1e-4,
        "loss_d: {} vs {} ({e:.2e})",
        d.loss,
        want["loss_d"]
    );
    let e = rel(
        &Tensor::from_slice(&[lecam.real, lecam.fake]),
        &want["lecam"],
    );
    assert!(
        e <= 1e-4,
        "LeCAM EMAs: {lecam:?} vs {} ({e:.2e})",
        want["lecam"]
    );
    assert!(
        replay.0.is_empty(),
        "{} reference draws unused",
        replay.0.len()
    );
    d.loss.backward();
    // Relative to the largest head gradient: the biases of the convolutions feeding a
    // BatchNorm have (mathematically) zero gradient, so their own scale is rounding noise.
    let scale = d_params
        .iter()
        .map(|(k, _)| f64::try_from(want[&format!("grad.{k}")].abs().max()).unwrap())
        .fold(0f64, f64::max);
    let mut worst = 0f64;
    for (k, p) in &d_params {
        let diff = f64::try_from((p.grad() - &want[&format!("grad.{k}")]).abs().max()).unwrap();
        let e = diff / scale;
        worst = worst.max(e);
        assert!(
            e <= 1e-4,
            "d loss / d {k}: {e:.2e} of the largest head gradient"
        );
    }
    report.push(format!("discriminator grads {worst:.1e}"));
    let mut worst = 0f64;
    for (k, t) in disc.state_dict() {
        let exp = &want[&format!("after.{k}")];
        let e = if k.ends_with("num_batches_tracked") {
            assert!(t.equal(&exp.to_kind(t.kind())), "{k}");
            0.0
        } else {
            rel(&t, exp)
        };
        worst = worst.max(e);
        assert!(e <= 1e-4, "{k} after the forwards: {e:.2e}");
    }
    report.push(format!("head state {worst:.1e}"));
    println!("{}", report.join(", "));
}

/// The GAN terms' view of the job: one process.
fn one_process() -> maetok_trainer::train::pool::Pool<'static> {
    maetok_trainer::train::pool::Pool {
        comm: Box::leak(Box::new(maetok_dist::Solo)),
        ranks: maetok_trainer::train::ranks::Ranks::SINGLE,
    }
}
