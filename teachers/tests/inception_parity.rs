//! The FID Inception against pytorch-fid 0.3.0's `InceptionV3([3])` (`use_fid_inception`)
//! on weights drawn from seeds in the same order here and in
//! `tests/fixtures/gen/gen_inception.py` (portable SplitMix draws), on uint8 images at 64×64, 299×299 and 331×250 through pytorch-fid's input
//! handling: pool features, logits without and with the bias, sFID features, each within
//! 1e-4 of max|ref|.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use maetok_nn::Weights;
use maetok_teachers::inception::Inception;
use maetok_teachers::random::inception_state;
use tch::{Device, Kind, Tensor};

const SEED: u64 = 20151205;

/// The generator's draws (its module docs), from portable SplitMix streams.
fn drawn() -> Inception {
    let t: HashMap<String, Tensor> = inception_state(SEED).into_iter().collect();
    Inception::from_weights(Weights::from_tensors(Path::new("<drawn>"), "", t)).unwrap()
}

fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    let d = (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
        .abs()
        .max();
    f64::try_from(d).unwrap() / f64::try_from(b.abs().max().to_kind(Kind::Double)).unwrap()
}

#[test]
fn features_match_pytorch_fid() {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/inception/runs.safetensors");
    let runs: HashMap<String, Tensor> = Tensor::read_safetensors(&file)
        .unwrap()
        .into_iter()
        .collect();
    let net = drawn();
    let n: i64 = net
        .vars()
        .named()
        .iter()
        .map(|(_, t)| t.numel() as i64)
        .sum();
    assert_eq!(n, 23_885_392, "values in the state dict");
    for name in ["small", "native", "large"] {
        let x = Inception::prepare_u8_nhwc(&runs[&format!("{name}.images")], Device::Cpu);
        let f = tch::no_grad(|| net.forward(&x));
        let with_bias = net.logits_with_bias(&f);
        for (what, ours) in [
            ("pool", &f.pool),
            ("logits", &f.logits),
            ("logits_with_bias", &with_bias),
            ("spatial", &f.spatial),
        ] {
            let e = rel_err(ours, &runs[&format!("{name}.{what}")]);
            println!("{name} {what}: {e:.2e}");
            assert!(e <= 1e-4, "{name} {what}: {e:.3e}");
        }
    }
}

/// A file with a key the network does not have is refused by name; BatchNorm step counts
/// (which pytorch-fid's `.pth` may carry) are not an error.
#[test]
fn extra_keys_are_refused_but_step_counts_are_not() {
    let layout = Inception::layout();
    let mut t: HashMap<String, Tensor> = layout
        .iter()
        .map(|(k, s)| (k.clone(), Tensor::zeros(s, (Kind::Float, Device::Cpu))))
        .collect();
    t.insert(
        "Mixed_5b.branch1x1.bn.num_batches_tracked".into(),
        Tensor::from(0i64),
    );
    let copy = |t: &HashMap<String, Tensor>| -> HashMap<String, Tensor> {
        t.iter()
            .map(|(k, v)| (k.clone(), v.shallow_clone()))
            .collect()
    };
    assert!(Inception::from_weights(Weights::from_tensors(Path::new("a"), "", copy(&t))).is_ok());
    t.insert(
        "AuxLogits.fc.weight".into(),
        Tensor::zeros([2], (Kind::Float, Device::Cpu)),
    );
    let e = Inception::from_weights(Weights::from_tensors(Path::new("a"), "", t))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("AuxLogits.fc.weight"), "{e}");
}
