//! The FID Inception against pytorch-fid 0.3.0's `InceptionV3([3])` (`use_fid_inception`)
//! on weights drawn from seeds in the same order here and in
//! `tests/fixtures/gen/gen_inception.py` (portable SplitMix draws), on uint8 images at 64×64, 299×299 and 331×250 through pytorch-fid's input
//! handling: pool features, logits without and with the bias, sFID features, each within
//! 1e-4 of max|ref|.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use maetok_nn::rng::{fixture_normals, fixture_uniforms};
use maetok_nn::Weights;
use maetok_teachers::inception::Inception;
use tch::{Device, Kind, Tensor};

const SEED: u64 = 20151205;

/// The generator's draws, key by key in sorted order (its module docs): portable SplitMix
/// streams, so every CPU draws the same weights.
fn drawn() -> Inception {
    let mut t = HashMap::new();
    for (i, (k, shape)) in Inception::layout().into_iter().enumerate() {
        let n = shape.iter().product::<i64>() as usize;
        let seed = SEED + i as u64;
        let normal = || Tensor::from_slice(&fixture_normals(seed, n)).reshape(&shape);
        let v = if k.ends_with("conv.weight") {
            let fan_in = (shape[1] * shape[2] * shape[3]) as f64;
            normal() * (2.0f64 / fan_in).sqrt()
        } else if k.ends_with("bn.weight") {
            normal() * 0.2 + 1.0
        } else if k.ends_with("bn.bias") || k.ends_with("running_mean") || k == "fc.bias" {
            normal() * 0.2
        } else if k.ends_with("running_var") {
            Tensor::from_slice(&fixture_uniforms(seed, n)).reshape(&shape) + 0.5
        } else if k == "fc.weight" {
            normal() / (shape[1] as f64).sqrt()
        } else {
            panic!("no rule for {k}")
        };
        t.insert(k, v);
    }
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
