//! LPIPS-VGG16 against the reference `modelling/lpips/lpips.py` (fixture from
//! `tests/fixtures/gen/gen_lpips.py`: a narrow VGG16 with random weights): values and the
//! gradient with respect to the reconstruction, in eval mode (heads' dropout off).

use std::collections::HashMap;
use std::path::PathBuf;

use maetok_teachers::lpips::Lpips;
use tch::Tensor;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/lpips")
}

fn rel(got: &Tensor, want: &Tensor) -> f64 {
    let d = f64::try_from((got - want).abs().max()).unwrap();
    d / f64::try_from(want.abs().max()).unwrap()
}

#[test]
fn lpips_matches_the_reference_values_and_gradients() {
    let runs: HashMap<String, Tensor> = Tensor::read_safetensors(dir().join("runs.safetensors"))
        .unwrap()
        .into_iter()
        .collect();
    let lpips = Lpips::load(
        &dir().join("vgg.safetensors"),
        &dir().join("heads.safetensors"),
    )
    .unwrap();
    let b = runs["b"].set_requires_grad(true);
    let out = lpips.forward(&runs["a"], &b, None);
    let e = rel(&out, &runs["lpips"]);
    assert!(e <= 1e-5, "lpips: {e:.2e}\n{out}\n{}", runs["lpips"]);
    out.sum(tch::Kind::Float).backward();
    let e = rel(&b.grad(), &runs["grad_b"]);
    assert!(e <= 1e-4, "d lpips / d b: {e:.2e}");
    // Close pairs score lower than the unrelated one.
    let v: Vec<f32> = Vec::try_from(out.detach().reshape([-1])).unwrap();
    assert!(v[0] < v[2] && v[1] < v[2], "{v:?}");
}

#[test]
fn training_mode_applies_dropout_to_the_heads() {
    let lpips = Lpips::load(
        &dir().join("vgg.safetensors"),
        &dir().join("heads.safetensors"),
    )
    .unwrap();
    let runs: HashMap<String, Tensor> = Tensor::read_safetensors(dir().join("runs.safetensors"))
        .unwrap()
        .into_iter()
        .collect();
    let n = runs["a"].size()[0] as u64;
    let keys = |base: u64| (0..n).map(|i| base + i).collect::<Vec<u64>>();
    let a = lpips.forward(&runs["a"], &runs["b"], Some(&keys(1)));
    let b = lpips.forward(&runs["a"], &runs["b"], Some(&keys(1)));
    let c = lpips.forward(&runs["a"], &runs["b"], Some(&keys(100)));
    assert!(a.equal(&b), "same keys, same masks");
    assert!(!a.equal(&c), "other keys, other masks");
    // A pair's masks depend on its key alone, not on the pairs beside it.
    let first = lpips.forward(
        &runs["a"].narrow(0, 0, 1),
        &runs["b"].narrow(0, 0, 1),
        Some(&keys(1)[..1]),
    );
    // (Equal up to the convolutions' batch-size-dependent rounding; other masks differ by
    // far more, see `c`.)
    assert!(rel(&first, &a.narrow(0, 0, 1)) < 1e-5, "per-pair masks");
    assert!(rel(&c.narrow(0, 0, 1), &a.narrow(0, 0, 1)) > 1e-3);
    let eval = lpips.forward(&runs["a"], &runs["b"], None);
    // Inverted dropout keeps the expectation: the mean over many masks approaches eval.
    let mean = (0..100)
        .map(|r| lpips.forward(&runs["a"], &runs["b"], Some(&keys(1000 + r * n))))
        .fold(eval.zeros_like(), |acc, x| acc + x)
        / 100.0;
    assert!(rel(&mean, &eval) < 0.05, "{mean} vs {eval}");
}

#[test]
fn weight_errors_name_the_file_and_what_to_download() {
    let Err(e) = Lpips::load(
        &dir().join("heads.safetensors"),
        &dir().join("heads.safetensors"),
    ) else {
        panic!("heads are not VGG weights");
    };
    let msg = e.to_string();
    assert!(
        msg.contains("features.0.weight") && msg.contains("vgg16"),
        "{msg}"
    );
}
