//! The mode analysis and the linear probe against scikit-learn 1.9.1 on data drawn the same
//! way as `tests/fixtures/gen/gen_latent_analysis.py` (portable SplitMix streams): a diag
//! GMM's log-likelihood of given parameters within 1e-6; EM on a known 8-component mixture
//! within 1 % of scikit-learn's best of 5 starts; the probe's held-out accuracy within 1
//! point of `LogisticRegression`.

use std::path::PathBuf;

use maetok_eval::gmm::{DiagGmm, FitOptions};
use maetok_eval::probe::{linear_probe, ProbeOptions};
use maetok_nn::rng::{fixture_normals, fixture_uniforms};
use tch::{Kind, Tensor};

fn n(seed: u64, rows: i64, cols: i64) -> Tensor {
    Tensor::from_slice(&fixture_normals(seed, (rows * cols) as usize))
        .reshape([rows, cols])
        .to_kind(Kind::Double)
}

fn u(seed: u64, rows: i64, cols: i64) -> Tensor {
    Tensor::from_slice(&fixture_uniforms(seed, (rows * cols) as usize))
        .reshape([rows, cols])
        .to_kind(Kind::Double)
}

fn expected() -> serde_json::Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/metrics/latent_analysis.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn gmm_log_likelihood_matches_scikit_learn() {
    let want = expected();
    let w = u(100, 1, 4).reshape([4]) + 0.5;
    let g = DiagGmm {
        weights: &w / w.sum(Kind::Double),
        means: n(101, 4, 6) * 3.0,
        variances: u(102, 4, 6) + 0.3,
    };
    let x = n(103, 200, 6) * 2.0;
    let ours: Vec<f64> = Vec::try_from(g.score_samples(&x)).unwrap();
    let theirs: Vec<f64> = want["score_samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let worst = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs() / b.abs())
        .fold(0.0, f64::max);
    println!("score_samples worst {worst:.2e}");
    assert!(worst <= 1e-6, "{worst:.3e}");
    let s = want["score"].as_f64().unwrap();
    assert!((g.score(&x) - s).abs() / s.abs() <= 1e-6);
}

#[test]
fn gmm_fit_reaches_scikit_learns_likelihood() {
    let want = expected()["fit_score"].as_f64().unwrap();
    let (k, d, rows) = (8i64, 4i64, 1600i64);
    let tm = n(110, k, d) * 5.0;
    let tv = u(111, k, d) * 0.5 + 0.2;
    let c = (u(112, rows, 1).reshape([rows]) * 8.0)
        .floor()
        .to_kind(Kind::Int64);
    let x = tm.index_select(0, &c) + tv.index_select(0, &c).sqrt() * n(113, rows, d);
    let g = DiagGmm::fit(
        &x,
        k,
        &FitOptions {
            n_init: 5,
            ..Default::default()
        },
    );
    let ours = g.score(&x);
    println!("fit: ours {ours:.5} scikit-learn {want:.5} (mean log-likelihood)");
    // NLL within 1 % of scikit-learn's (or better).
    assert!(-ours <= -want + 0.01 * want.abs(), "{ours} vs {want}");
    assert_eq!(g.parameters(), 2 * 8 * 4 + 7);
}

#[test]
fn probe_accuracy_matches_logistic_regression() {
    let want = expected()["probe_accuracy"].as_f64().unwrap();
    let (rows, d) = (1500i64, 20i64);
    let cm = n(120, 3, d) * 0.3;
    let y = Tensor::arange(rows, (Kind::Int64, tch::Device::Cpu)).remainder(3);
    let x = cm.index_select(0, &y) + n(121, rows, d);
    let acc = linear_probe(
        &x.narrow(0, 0, 1000),
        &y.narrow(0, 0, 1000),
        &x.narrow(0, 1000, 500),
        &y.narrow(0, 1000, 500),
        &ProbeOptions::default(),
    );
    println!("probe: ours {acc} scikit-learn {want}");
    assert!((acc - want).abs() <= 0.01, "{acc} vs {want}");
}
