//! Stage 1's loss reaches every trained tensor. At initialisation the MoVQ decoders'
//! zero-initialised adaLN (spec §2.5) multiplies the latent rows by 0, so nothing upstream
//! of them gets a gradient until the first update opens that path — as in the reference.
//! After one AdamW step, every parameter has a non-zero gradient except the final MoVQ
//! norms' adaLN, which modulates only the latent rows that the decoder then discards
//! (dead in the reference too: `MoVQNorm.forward`).

use std::collections::HashMap;

use maetok_models::maetok::mask::sample_mask;
use maetok_trainer::train::adamw::AdamW;
use maetok_trainer::train::config::TrainConfig;
use maetok_trainer::train::model::{Tokenizer, Trained};
use maetok_trainer::train::rng::SplitMix;
use tch::{Kind, Tensor};

#[test]
fn every_parameter_gets_a_gradient_after_the_first_update() {
    tch::manual_seed(0);
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../configs/tokenizer-tiny.toml"
    ))
    .unwrap();
    let cfg = TrainConfig::parse(&text).unwrap();
    let dims = HashMap::from([("hog".to_string(), 108i64)]);
    let m = Tokenizer::fresh(&cfg, &dims).unwrap();
    let params = m.params(Trained::All);
    let mut opt = AdamW::new(&params, cfg.adamw());
    let x = Tensor::rand([2, 3, 64, 64], (Kind::Float, tch::Device::Cpu)) * 2.0 - 1.0;
    let target = Tensor::rand([2, 16, 108], (Kind::Float, tch::Device::Cpu));
    let mut rows = [SplitMix::new(1), SplitMix::new(2)];
    let mask = sample_mask(16, 0.5, &mut rows);
    let mut grads = Vec::new();
    for _ in 0..2 {
        opt.zero_grad();
        let z = m.ae.encode(&x, Some(&mask));
        let y = m.ae.decode(&z);
        let aux = &m.aux[0];
        let loss = (&y - &x).square().mean(Kind::Float)
            + aux.loss(&aux.forward(&z, (4, 4)), &target, &mask);
        loss.backward();
        grads = params
            .iter()
            .map(|(k, p)| {
                let g = p.grad();
                let v = if g.defined() {
                    f64::try_from(g.abs().max()).unwrap()
                } else {
                    0.0
                };
                (k.clone(), v)
            })
            .collect::<Vec<_>>();
        opt.step(1e-2);
    }
    let dead_by_design = |k: &str| k.contains("model.norm.adaLN_modulation");
    let dead: Vec<&String> = grads
        .iter()
        .filter(|(k, v)| *v == 0.0 && !dead_by_design(k))
        .map(|(k, _)| k)
        .collect();
    assert!(dead.is_empty(), "no gradient after one update: {dead:?}");
    assert!(grads
        .iter()
        .filter(|(k, _)| dead_by_design(k))
        .all(|(_, v)| *v == 0.0));
}
