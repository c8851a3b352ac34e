//! Opt-in: the full MAETok-B/128 shape against the official `AEModel` with random weights
//! (`tests/fixtures/gen/gen_b128.py` writes them from a seed into `MAETOK_B128_DIR`,
//! default `bench-out/b128`; 700 MB, not committed). Run with
//! `cargo test --release -p maetok-trainer --test maetok_b128_parity -- --ignored`.

use std::collections::HashMap;
use std::path::PathBuf;

use maetok_models::maetok::AeModel;
use tch::Tensor;

fn rel(a: &Tensor, b: &Tensor) -> f64 {
    f64::try_from((a - b).abs().max()).unwrap() / f64::try_from(b.abs().max()).unwrap()
}

#[test]
#[ignore = "needs the B-128 weights from tests/fixtures/gen/gen_b128.py"]
fn b128_encode_decode_match_the_official_model() {
    let dir = std::env::var_os("MAETOK_B128_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bench-out/b128"));
    let model = AeModel::load(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let runs: HashMap<String, Tensor> = Tensor::read_safetensors(dir.join("runs.safetensors"))
        .unwrap()
        .into_iter()
        .collect();
    let (z, y) = tch::no_grad(|| {
        let z = model.encode(&runs["images"], None);
        let y = model.decode(&runs["latent"]);
        (z, y)
    });
    let (ez, ey) = (rel(&z, &runs["latent"]), rel(&y, &runs["decoded"]));
    println!("B-128: latent {ez:.2e}, decoded {ey:.2e}");
    assert!(
        ez <= 1e-4 && ey <= 1e-4,
        "latent {ez:.2e}, decoded {ey:.2e}"
    );
}
