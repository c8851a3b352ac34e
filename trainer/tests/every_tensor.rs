//! Every model's tensors come from one definition (its constructor, through `VarBuilder`),
//! and this checks the consequences for each model (MAETok with the MoVQ and the plain
//! pixel decoder and the HOG, feature and caption decoders, the ViT teachers, the DINO
//! discriminator, LPIPS, SiT):
//!
//! * nothing the forward reads is left out of the model's `Vars`: a second model built
//!   from other weights, given the first one's `Vars` values, computes the same outputs
//!   bit for bit (a tensor outside `Vars` would keep its own values);
//! * every tensor is saved, and a saved model reloads bit-identical;
//! * the trainable set of each stage is every parameter of its parts and nothing else,
//!   and it is what the optimiser and the EMA hold.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use maetok_models::maetok::mask::sample_mask;
use maetok_nn::rng::SplitMix;
use maetok_nn::vars::{Role, Vars};
use maetok_nn::weights::{write_safetensors_atomic, Weights};
use maetok_teachers::lpips::Lpips;
use maetok_teachers::model_config::ModelConfig;
use maetok_teachers::vit::{VisionTransformer, VitHyper};
use maetok_teachers::Family;
use maetok_trainer::losses::disc::Discriminator;
use maetok_trainer::train::adamw::AdamW;
use maetok_trainer::train::config::TrainConfig;
use maetok_trainer::train::ema::Ema;
use maetok_trainer::train::model::{Tokenizer, Trained};
use tch::{Device, Kind, Tensor};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// Copy `from`'s values into `to`'s tensors of the same names (all of them).
fn copy_values(from: &Vars, to: &Vars) {
    assert_eq!(names(from), names(to));
    tch::no_grad(|| {
        for (k, mut t) in to.named() {
            t.copy_(from.get(&k).unwrap());
        }
    });
}

fn names(v: &Vars) -> BTreeSet<String> {
    v.iter().map(|v| v.name.clone()).collect()
}

fn same(a: &Tensor, b: &Tensor) -> bool {
    a.size() == b.size() && a.equal(b)
}

fn config(decoder: &str) -> TrainConfig {
    TrainConfig::parse(&format!(
        "[data]\nshards = \"unused\"\n[losses]\nperceptual_weight = 0.0\n[gan]\ndisc_weight = 0.0\n\
         [model]\nimage_size = 32\npatch_size = 8\nwidth = 32\nenc_depth = 2\ndec_depth = 2\n\
         enc_heads = 2\ndec_heads = 2\nnum_latent_tokens = 8\nlatent_dim = 4\naux_width = 16\n\
         aux_depth = 1\naux_heads = 2\naux_mlp = 32\ndecoder = \"{decoder}\"\n\
         [[aux]]\nname = \"hog\"\ntarget = \"hog\"\nloss = \"mse\"\n\
         [[aux]]\nname = \"dino\"\ntarget = \"dinov2\"\nloss = \"cosine\"\n\
         [[aux]]\nname = \"text\"\ntarget = \"text_ids\"\nloss = \"caption\"\n"
    ))
    .unwrap()
}

fn fresh(cfg: &TrainConfig, seed: i64) -> Tokenizer {
    let dims: HashMap<String, i64> = [("hog", 12), ("dinov2", 6), ("text_ids", 20)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    tch::manual_seed(seed);
    Tokenizer::fresh(cfg, &dims).unwrap()
}

/// A fixed input in [-1, 1] that no random generator touches (the tests of this file run
/// in parallel threads, which share libtorch's global generator).
fn images(shape: &[i64]) -> Tensor {
    let n: i64 = shape.iter().product();
    (Tensor::arange(n, (Kind::Float, Device::Cpu)) * 0.37)
        .sin()
        .reshape(shape)
}

/// Every output of a training forward: latents, reconstruction, each aux prediction.
fn outputs(m: &Tokenizer) -> Vec<Tensor> {
    let x = images(&[2, 3, 32, 32]);
    let mut rows: Vec<SplitMix> = (0..2).map(SplitMix::new).collect();
    let mask = sample_mask(16, 0.5, &mut rows);
    tch::no_grad(|| {
        let z = m.ae.encode(&x, Some(&mask));
        let mut out = vec![m.ae.decode(&z), m.ae.reconstruct(&x)];
        out.extend(m.aux.iter().map(|a| a.forward(&z, m.ae.encoder.grid)));
        out.push(z);
        out
    })
}

/// The tensors no stage trains: the reference's RoPE position buffers and the timm
/// `pos_embed` / `patch_embed` its decoders carry but never read.
fn never_trained(name: &str) -> bool {
    name.contains("freqs_t_")
        || (name.starts_with("decoder") && name.contains(".model.pos_embed"))
        || (name.starts_with("decoder") && name.contains(".model.patch_embed."))
}

#[test]
fn tokenizer_tensors_come_from_one_definition() {
    for decoder in ["movq", "plain"] {
        let cfg = config(decoder);
        let a = fresh(&cfg, 0);
        let b = fresh(&cfg, 1);
        let (oa, ob) = (outputs(&a), outputs(&b));
        assert!(
            oa.iter().zip(&ob).all(|(x, y)| !same(x, y)),
            "{decoder}: seeds differ"
        );
        copy_values(&a.ae.vars, &b.ae.vars);
        copy_values(&a.aux_vars, &b.aux_vars);
        for (i, (x, y)) in oa.iter().zip(&outputs(&b)).enumerate() {
            assert!(
                same(x, y),
                "{decoder}: output {i} reads a tensor outside Vars"
            );
        }

        // Saved and reloaded: the same names, bit-identical tensors and outputs.
        let dir = tempfile::tempdir().unwrap();
        a.save(dir.path(), None).unwrap();
        let c = Tokenizer::load(dir.path(), &cfg, true).unwrap();
        for (va, vc) in [(&a.ae.vars, &c.ae.vars), (&a.aux_vars, &c.aux_vars)] {
            assert_eq!(names(va), names(vc), "{decoder}: saved names");
            for (k, t) in va.named() {
                assert!(
                    same(&t, vc.get(&k).unwrap()),
                    "{decoder}: `{k}` reloads changed"
                );
            }
        }
        assert!(oa.iter().zip(&outputs(&c)).all(|(x, y)| same(x, y)));

        // The trainable sets, as the optimiser and the EMA hold them.
        let all: BTreeSet<String> = names(&a.ae.vars)
            .into_iter()
            .chain(names(&a.aux_vars))
            .filter(|k| !never_trained(k))
            .collect();
        let decoder_side: BTreeSet<String> = all
            .iter()
            .filter(|k| k.starts_with("decoder.") || k.starts_with("post_quant_conv."))
            .cloned()
            .collect();
        assert!(decoder_side.contains("decoder.to_pixel.model.weight"));
        for (stage, want) in [(Trained::All, &all), (Trained::Decoder, &decoder_side)] {
            let params = a.params(stage);
            let got: BTreeSet<String> = params.iter().map(|(k, _)| k.clone()).collect();
            assert_eq!(&got, want, "{decoder}: {stage:?} trainable set");
            let opt = AdamW::new(&params, cfg.adamw());
            let in_opt: BTreeSet<String> = opt
                .state_tensors()
                .into_iter()
                .filter_map(|(k, _)| k.strip_suffix(".exp_avg").map(str::to_string))
                .collect();
            assert_eq!(&in_opt, want, "{decoder}: {stage:?} optimiser set");
            let ema = Ema::new(&params, 0.9);
            let in_ema: BTreeSet<String> = ema.tensors().iter().map(|(k, _)| k.clone()).collect();
            assert_eq!(&in_ema, want, "{decoder}: {stage:?} EMA set");
        }
    }
}

/// Writes `tensors` with every value doubled to `dir/name` (other weights, same layout).
fn doubled(path: &Path, dir: &Path, name: &str) -> PathBuf {
    let t: Vec<(String, Tensor)> = Tensor::read_safetensors(path)
        .unwrap()
        .into_iter()
        .map(|(k, t)| {
            let t = if t.is_floating_point() {
                t * 2.0 + 0.5
            } else {
                t
            };
            (k, t)
        })
        .collect();
    let out = dir.join(name);
    write_safetensors_atomic(&t, &out).unwrap();
    out
}

#[test]
fn teacher_lpips_and_discriminator_tensors_come_from_one_definition() {
    let tmp = tempfile::tempdir().unwrap();
    // ViT teachers in timm's layout: every tensor of the file is taken, and the forward
    // reads only what `Vars` holds.
    for (case, family) in [
        ("dinov2_timm", Family::Dinov2),
        ("dinov2_reg_timm", Family::Dinov2),
        ("dinov2_swiglu_timm", Family::Dinov2),
        ("siglip_timm", Family::Siglip),
        ("clip_timm", Family::Clip),
    ] {
        let dir = fixtures().join("teachers").join(case);
        let cfg = ModelConfig::load(&dir.join("config.json")).unwrap();
        let hyper = VitHyper {
            num_heads: cfg.num_heads.unwrap(),
            act: cfg.act.unwrap_or(family.default_act()),
            eps: cfg.eps.unwrap_or(family.default_eps()),
        };
        let weights = dir.join("model.safetensors");
        let load = |p: &Path| {
            let w = Weights::load(p, "fixture").unwrap();
            VisionTransformer::load(w, &hyper, (56, 56), 14).unwrap()
        };
        let (a, left) = load(&weights);
        assert!(left.is_empty(), "{case}: keys not read: {left:?}");
        let (b, _) = load(&doubled(
            &weights,
            tmp.path(),
            &format!("{case}.safetensors"),
        ));
        let x = images(&[1, 3, 56, 56]);
        let ya = tch::no_grad(|| a.forward_features(&x));
        assert!(!same(&ya, &tch::no_grad(|| b.forward_features(&x))));
        copy_values(a.vars(), b.vars());
        assert!(
            same(&ya, &tch::no_grad(|| b.forward_features(&x))),
            "{case}"
        );
    }

    // LPIPS.
    let lp = fixtures().join("lpips");
    let (vgg, heads) = (lp.join("vgg.safetensors"), lp.join("heads.safetensors"));
    let a = Lpips::load(&vgg, &heads).unwrap();
    let b = Lpips::load(
        &doubled(&vgg, tmp.path(), "vgg.safetensors"),
        &doubled(&heads, tmp.path(), "heads.safetensors"),
    )
    .unwrap();
    let (x, y) = (images(&[2, 3, 32, 32]), images(&[2, 3, 32, 32]).flip([3]));
    let la = tch::no_grad(|| a.forward(&x, &y, None));
    assert!(!same(&la, &tch::no_grad(|| b.forward(&x, &y, None))));
    copy_values(a.vars(), b.vars());
    assert!(
        same(&la, &tch::no_grad(|| b.forward(&x, &y, None))),
        "LPIPS"
    );

    // The discriminator: the frozen backbone as above, the heads fresh from two seeds.
    let dino = fixtures().join("step/dino.safetensors");
    tch::manual_seed(0);
    let a = Discriminator::new(&dino, 2, Device::Cpu).unwrap();
    tch::manual_seed(1);
    let b = Discriminator::new(
        &doubled(&dino, tmp.path(), "dino.safetensors"),
        2,
        Device::Cpu,
    )
    .unwrap();
    let x = images(&[2, 3, 32, 32]);
    let logits = |d: &Discriminator| tch::no_grad(|| d.forward(&x, false, &mut SplitMix::new(3)));
    let da = logits(&a);
    assert!(!same(&da, &logits(&b)));
    copy_values(a.backbone.vars(), b.backbone.vars());
    copy_values(&a.vars, &b.vars);
    assert!(same(&da, &logits(&b)), "discriminator");
    // Heads: trained = conv weights and biases, BatchNorm's affine; the rest are buffers.
    for v in a.vars.iter() {
        let trained = v.name.ends_with("weight_orig")
            || v.name.ends_with(".bias")
            || v.name.ends_with(".weight");
        assert_eq!(v.role == Role::Param, trained, "{}", v.name);
    }
    // Saved head state restores into fresh heads bit-identical.
    tch::manual_seed(2);
    let c = Discriminator::new(&dino, 2, Device::Cpu).unwrap();
    assert!(!same(&da, &logits(&c)));
    let saved: HashMap<String, Tensor> = a.state_dict().into_iter().collect();
    assert_eq!(saved.len(), a.vars.len(), "every head tensor is saved");
    c.load_state(saved).unwrap();
    assert!(same(&da, &logits(&c)), "discriminator heads reload");
}

/// SiT and LightningDiT (with qk-norm and RoPE, so their optional tensors are covered too):
/// every tensor the forward reads is in `Vars`, saved and reloaded bit-identical, and every
/// one but the fixed position and rotary tables is trained, in the optimiser's and the
/// EMA's sets.
#[test]
fn diffusion_tensors_come_from_one_definition() {
    use maetok_models::denoiser::{Denoiser, DenoiserConfig};
    use maetok_models::lightningdit::LightningDitConfig;
    use maetok_models::sit::SitConfig;
    let mut sit = SitConfig::preset("SiT-mini/1", 16, 8, 10).unwrap();
    sit.qk_norm = true;
    let mut ld = LightningDitConfig::preset("LightningDiT-mini/1", 16, 8, 10).unwrap();
    ld.use_qknorm = true;
    let fixed = |k: &str| k == "pos_embed" || k.starts_with("feat_rope.");
    for cfg in [DenoiserConfig::Sit(sit), DenoiserConfig::LightningDit(ld)] {
        let family = cfg.family();
        let fresh = |seed: i64| {
            tch::manual_seed(seed);
            let m = Denoiser::fresh(cfg.clone()).unwrap();
            // The official inits zero adaLN and the final layer (output 0 whatever the
            // rest): redraw every tensor so each one shows in the output.
            tch::no_grad(|| {
                for (k, mut t) in m.vars().named() {
                    if !fixed(&k) {
                        t.copy_(&(Tensor::randn_like(&t) * 0.3));
                    }
                }
            });
            m
        };
        let x = Tensor::randn([3, 16, 8], (Kind::Float, Device::Cpu));
        let t = Tensor::from_slice(&[0.1f32, 0.5, 0.9]);
        let y = Tensor::from_slice(&[0i64, 10, 3]);
        let out = |m: &Denoiser| tch::no_grad(|| m.forward(&x, &t, &y));
        let (a, b) = (fresh(0), fresh(1));
        assert!(!same(&out(&a), &out(&b)), "{family}: seeds differ");
        copy_values(a.vars(), b.vars());
        assert!(
            same(&out(&a), &out(&b)),
            "{family}: the forward reads a tensor outside Vars"
        );

        let dir = tempfile::tempdir().unwrap();
        a.save(dir.path()).unwrap();
        let c = Denoiser::load(dir.path()).unwrap();
        assert_eq!(names(a.vars()), names(c.vars()), "{family}");
        for (k, t) in a.vars().named() {
            assert!(
                same(&t, c.vars().get(&k).unwrap()),
                "{family}: `{k}` reloads changed"
            );
        }
        assert!(same(&out(&a), &out(&c)), "{family}");

        let want: BTreeSet<String> = names(a.vars()).into_iter().filter(|k| !fixed(k)).collect();
        assert!(want.contains("blocks.1.attn.k_norm.weight"), "{family}");
        let params = a.vars().params(|_| true);
        let got: BTreeSet<String> = params.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(got, want, "{family}: trainable set");
        let opt = AdamW::new(&params, Default::default());
        let in_opt: BTreeSet<String> = opt
            .state_tensors()
            .into_iter()
            .filter_map(|(k, _)| k.strip_suffix(".exp_avg").map(str::to_string))
            .collect();
        assert_eq!(in_opt, want, "{family}: optimiser set");
        let ema = Ema::new(&params, 0.9);
        let in_ema: BTreeSet<String> = ema.tensors().iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(in_ema, want, "{family}: EMA set");
    }
}
