//! The mask-modeling training forward against the official `MaskAEModel` (fixture
//! `tests/fixtures/gen/gen_mask_step.py`): encoder with the reference's mask, MoVQ pixel
//! decoder, the three auxiliary MoVQ decoders with their masked losses on the recorded
//! teacher targets; values and the gradient of `MSE + L_hog + L_dino + L_clip` for every
//! parameter of the model and the auxiliary decoders.

use std::collections::HashMap;
use std::path::PathBuf;

use maetok_models::maetok::aux::{AuxDecoder, AuxLoss};
use maetok_models::maetok::decoder::DecoderNames;
use maetok_models::maetok::{AeConfig, AeModel, DecoderShape};
use maetok_nn::vars;
use maetok_nn::weights::Weights;
use tch::{Kind, Tensor};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/maetok_train")
}

fn rel(got: &Tensor, want: &Tensor) -> f64 {
    assert_eq!(got.size(), want.size());
    let d = f64::try_from((got - want).abs().max()).unwrap();
    let m = f64::try_from(want.abs().max()).unwrap();
    if m == 0.0 {
        d
    } else {
        d / m
    }
}

#[test]
fn training_forward_losses_and_gradients_match_the_reference() {
    let arch: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("arch.json")).unwrap()).unwrap();
    let mut cfg = AeConfig::load(&dir().join("config.json")).unwrap();
    cfg.enc_num_heads = arch["encoder"]["num_heads"].as_i64();
    cfg.dec_num_heads = arch["decoder"]["num_heads"].as_i64();
    let model = AeModel::load_with_config(&dir(), cfg).unwrap();
    let w = Weights::load(&dir().join("aux.safetensors"), "fixture").unwrap();
    let aux_heads = arch["aux"]["num_heads"].as_i64().unwrap();
    let heads = [
        ("hog", AuxLoss::Mse),
        ("dino", AuxLoss::Cosine),
        ("clip", AuxLoss::Cosine),
    ];
    let shapes: Vec<DecoderShape> = heads
        .iter()
        .map(|(n, _)| DecoderShape::read(&w, &DecoderNames::aux(n), aux_heads).unwrap())
        .collect();
    let (aux, aux_vars, _) = vars::load(w, |vb| {
        heads
            .iter()
            .zip(&shapes)
            .map(|((n, l), d)| AuxDecoder::new(&vb, n, *l, d, &model.shape))
            .collect::<Result<Vec<AuxDecoder>, _>>()
    })
    .unwrap();
    let runs: HashMap<String, Tensor> = Tensor::read_safetensors(dir().join("runs.safetensors"))
        .unwrap()
        .into_iter()
        .collect();

    let mut params = model.vars.params(|_| true);
    params.extend(aux_vars.params(|_| true));
    for (_, p) in &params {
        let _ = p.set_requires_grad(true);
    }
    let x = &runs["images"];
    let mask = runs["mask"].gt(0.5);
    let z = model.encode(x, Some(&mask));
    let dec = model.decode(&z);
    let rec = (&dec - x).square().mean(Kind::Float);
    let mut total = rec.shallow_clone();
    let mut report = vec![format!(
        "decoded {:.1e}",
        rel(&dec.detach(), &runs["decoded"])
    )];
    assert!(rel(&dec.detach(), &runs["decoded"]) <= 1e-4);
    let e = rel(&rec.detach().reshape([1]), &runs["rec"]);
    assert!(e <= 1e-5, "rec: {e:.2e}");
    for a in &aux {
        let l = a.loss(
            &a.forward(&z, (4, 4)),
            &runs[&format!("target_{}", a.name)],
            &mask,
        );
        let e = rel(&l.detach().reshape([1]), &runs[&a.name]);
        report.push(format!("{} {e:.1e}", a.name));
        assert!(
            e <= 1e-4,
            "{} loss: {} vs {} ({e:.2e})",
            a.name,
            l,
            runs[&a.name]
        );
        total += l;
    }
    total.backward();
    let mut worst = (0f64, String::new());
    let mut compared = 0;
    for (k, p) in &params {
        let want = runs
            .get(&format!("grad.{k}"))
            .unwrap_or_else(|| panic!("the reference has no gradient for {k}"));
        let g = p.grad();
        let g = if g.defined() { g } else { want.zeros_like() };
        let e = rel(&g, want);
        if e > worst.0 {
            worst = (e, k.clone());
        }
        assert!(e <= 1e-4, "d loss / d {k}: {e:.2e}");
        compared += 1;
    }
    report.push(format!(
        "{compared} gradients, worst {:.1e} ({})",
        worst.0, worst.1
    ));
    println!("{}", report.join(", "));
}
