//! The training presets in `configs/` parse and hold the paper's numbers (spec §2.1, §5.3,
//! §5.4).

use std::path::PathBuf;

use maetok_models::maetok::aux::AuxLoss;
use maetok_models::maetok::MaetokShape;
use maetok_trainer::train::config::TrainConfig;

fn load(name: &str) -> TrainConfig {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../configs")
        .join(name);
    TrainConfig::load(&p).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn paper_presets() {
    for (name, res, text) in [
        ("maetok-b-128.toml", 256, false),
        ("maetok-b-128-512.toml", 512, false),
        ("maetok-b-128-laion-text.toml", 512, true),
    ] {
        let c = load(name);
        assert_eq!(c.model.shape(), MaetokShape::maetok_b_128(res), "{name}");
        let s = c.schedule(c.optim.warmup_steps);
        assert_eq!(
            (s.base, s.total, s.warmup),
            (2e-4, 500_000, 10_000),
            "{name}"
        );
        assert!((s.min - 2e-5).abs() < 1e-15);
        let aux: Vec<(&str, &str, AuxLoss)> = c
            .aux
            .iter()
            .map(|a| (a.name.as_str(), a.target.as_str(), a.loss))
            .collect();
        let mut want = vec![
            ("hog", "hog", AuxLoss::Mse),
            ("dino", "dinov2", AuxLoss::Cosine),
            ("clip", "siglip", AuxLoss::Cosine),
        ];
        if text {
            want.push(("text", "text_ids", AuxLoss::Caption));
        }
        assert_eq!(aux, want, "{name}");
        assert_eq!(
            (
                c.gan.disc_weight,
                c.gan.disc_start,
                c.gan.lecam_weight,
                c.gan.cr_weight
            ),
            (0.4, 30_000, 0.001, 4.0)
        );
        assert_eq!(
            (c.losses.perceptual_weight, c.losses.perceptual_warmup),
            (1.0, 10_000)
        );
        assert_eq!(
            (c.optim.beta1, c.optim.beta2, c.optim.weight_decay),
            (0.9, 0.95, 1e-4)
        );
        assert_eq!((c.optim.grad_clip, c.optim.ema_decay), (1.0, 0.9999));
    }
    let ft = load("maetok-b-128-decoder-ft.toml");
    assert_eq!(
        (ft.train.steps, ft.decoder_ft.mask_ratio_start),
        (50_000, 0.6)
    );
    assert_eq!(ft.optim.warmup_steps, 0);
    assert_eq!(load("tokenizer-tiny.toml").model.image_size, 64);
    let d = load("decoder-tiny.toml");
    assert_eq!(
        (d.decoder_ft.mask_ratio_start, d.optim.warmup_steps),
        (0.6, 0)
    );
}

/// The SiT presets (spec §7.1, §7.3, §7.4): sizes, schedules and the paper's sampling.
#[test]
fn sit_presets() {
    use maetok_models::denoiser::DenoiserConfig;
    use maetok_trainer::train::sit::SitTrainConfig;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let sit = |name: &str| SitTrainConfig::load(&dir.join(name)).unwrap_or_else(|e| panic!("{e}"));
    for name in ["sit-xl-maetok-256.toml", "sit-xl-maetok-512.toml"] {
        let c = sit(name);
        let DenoiserConfig::Sit(m) = c.denoiser(128, 32) else {
            panic!("{name}: not a SiT")
        };
        assert_eq!(m.num_values(), 675_000_608, "{name}");
        assert_eq!(
            (c.train.steps, c.data.batch_size),
            (4_000_000, 256),
            "{name}"
        );
        let o = &c.optim;
        assert_eq!(
            (
                o.lr,
                o.beta1,
                o.beta2,
                o.eps,
                o.weight_decay,
                o.grad_clip,
                o.ema_decay
            ),
            (1e-4, 0.9, 0.999, 1e-8, 0.0, 1.0, 0.9999),
            "{name}"
        );
        assert_eq!(c.schedule().lr(0), 1e-4);
        assert_eq!(m.class_dropout_prob, 0.1);
    }
    let l = sit("sit-l-ablation.toml");
    assert_eq!(
        (l.model.preset.as_str(), l.train.steps),
        ("SiT-L/1", 400_000)
    );
    let t = sit("sit-tiny.toml");
    assert!(t.denoiser(128, 32).num_values() < 2_000_000);
    // LightningDiT-XL/1 (spec §7.5): 400K steps, batch 1024, lr 2e-4, betas (0.9, 0.95), the
    // cosine term, no clipping (the released configs have no max_grad_norm).
    let ld = sit("lightningdit-xl-maetok-256.toml");
    let DenoiserConfig::LightningDit(m) = ld.denoiser(128, 32) else {
        panic!("lightningdit-xl-maetok-256.toml: not a LightningDiT")
    };
    assert_eq!(
        (
            m.use_rmsnorm,
            m.use_swiglu,
            m.use_rope,
            m.use_qknorm,
            m.wo_shift
        ),
        (true, true, true, false, false)
    );
    assert_eq!((m.num_values(), m.mlp_hidden()), (675_127_712, 3072));
    assert_eq!(
        (ld.train.steps, ld.data.batch_size, ld.optim.lr),
        (400_000, 1024, 2e-4)
    );
    assert_eq!(
        (ld.optim.beta1, ld.optim.beta2, ld.optim.weight_decay),
        (0.9, 0.95, 0.0)
    );
    assert_eq!(
        (ld.transport.cosine_weight, ld.transport.time_sampling),
        (1.0, maetok_diffusion::TimeSampling::LogitNormal)
    );
    assert!(sit("lightningdit-tiny.toml").denoiser(128, 32).num_values() < 2_000_000);
    for (name, sampler, scale, high) in [
        ("sample-sit-xl-256.toml", "euler-maruyama", 1.9, 0.75),
        ("sample-sit-xl-512.toml", "euler-maruyama", 1.5, 0.7),
        ("sample-lightningdit-xl-256.toml", "euler", 1.8, 0.75),
        ("sample-lightningdit-xl-512.toml", "euler", 1.6, 0.65),
    ] {
        let v: toml::Value =
            toml::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap();
        assert_eq!(v["sampler"].as_str(), Some(sampler), "{name}");
        assert_eq!(v["steps"].as_integer(), Some(250), "{name}");
        assert_eq!(v["cfg_scale"].as_float(), Some(scale), "{name}");
        let i: Vec<f64> = v["cfg_interval"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_float().unwrap())
            .collect();
        assert_eq!(i, [0.0, high], "{name}");
    }
}
