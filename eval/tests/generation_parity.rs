//! FID, Inception Score and precision/recall against the references on features drawn from
//! seeds the same way as `tests/fixtures/gen/gen_generation_metrics.py` (portable SplitMix
//! normals): pytorch-fid's
//! `calculate_frechet_distance` (scipy `sqrtm`) within 1e-5 relative, full-rank and with
//! fewer samples than dimensions; the ADM evaluator's Inception Score and precision/recall
//! (restated in NumPy) within 1e-6 and point for point.

use std::path::PathBuf;

use maetok_eval::fid::Statistics;
use maetok_eval::inception_score::{inception_score, SPLIT_SIZE};
use maetok_eval::precision_recall::precision_recall;
use maetok_nn::rng::fixture_normals;
use tch::Tensor;

/// Portable SplitMix normals (`tests/fixtures/gen/portable_rng.py`) as an (n, d) tensor.
fn normals(seed: u64, n: i64, d: i64) -> Tensor {
    Tensor::from_slice(&fixture_normals(seed, (n * d) as usize)).reshape([n, d])
}

fn draw(n: i64, d: i64, seed: u64) -> Tensor {
    let mix = normals(3 * seed, d, d) / (d as f64).sqrt();
    let shift = normals(3 * seed + 1, 1, d) * 0.5;
    normals(3 * seed + 2, n, d).matmul(&mix) + shift
}

fn expected() -> serde_json::Value {
    let p =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/metrics/generation.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn fid(a: &Tensor, b: &Tensor) -> f64 {
    let (sa, sb) = (
        Statistics::from_features(a).unwrap(),
        Statistics::from_features(b).unwrap(),
    );
    sa.frechet_distance(&sb).unwrap()
}

#[test]
fn fid_matches_pytorch_fid_full_rank_and_rank_deficient() {
    let want = expected();
    for (key, got) in [
        ("fid_full", fid(&draw(300, 64, 1), &draw(250, 64, 2))),
        (
            "fid_rank_deficient",
            fid(&draw(500, 2048, 3), &draw(400, 2048, 4)),
        ),
    ] {
        let w = want[key].as_f64().unwrap();
        let e = (got - w).abs() / w.abs();
        println!("{key}: ours {got:.10} pytorch-fid {w:.10} ({e:.2e})");
        assert!(e <= 1e-5, "{key}: {got} vs {w} ({e:.3e})");
    }
}

#[test]
fn inception_score_matches_the_adm_evaluator() {
    let want = expected();
    let logits = normals(5, 12000, 1008) * 3.0;
    let (is, splits) = inception_score(&logits, SPLIT_SIZE);
    let w = want["is"].as_f64().unwrap();
    println!("IS: ours {is:.10} reference {w:.10}");
    assert!((is - w).abs() / w <= 1e-6, "{is} vs {w}");
    let ws: Vec<f64> = want["is_splits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(splits.len(), ws.len());
    for (a, b) in splits.iter().zip(&ws) {
        assert!((a - b).abs() / b <= 1e-6, "{a} vs {b}");
    }
}

#[test]
fn precision_recall_match_the_adm_evaluator() {
    let want = expected();
    let both = draw(1100, 64, 7);
    let reference = both.narrow(0, 0, 600);
    let samples = both.narrow(0, 600, 500) * 1.2;
    let (p, r) = precision_recall(&reference, &samples);
    println!("precision {p} recall {r}");
    // The same points in and out: the shares agree to their last bit but the mean's.
    assert!(
        (p - want["precision"].as_f64().unwrap()).abs() < 1e-12,
        "{p}"
    );
    assert!((r - want["recall"].as_f64().unwrap()).abs() < 1e-12, "{r}");
}
