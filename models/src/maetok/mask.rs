//! Mask modeling's random draws (spec §3): one ratio per step from N(0.6, 0.25²) truncated
//! to [0.4, 0.6], `ceil(N · r)` masked patches per image at positions from an independent
//! uniform permutation per image. Randomness comes from the caller: the ratio from the
//! step's uniform source, each image's positions from that image's own generator (keyed by
//! its global sample index in training, `train/rng.rs`), so an image's mask does not
//! depend on the images beside it.

use maetok_nn::rng::SplitMix;
use tch::Tensor;

/// The truncated normal of the mask ratio, by rejection from Box–Muller normals (exact;
/// about 3.5 normal draws per ratio).
pub fn sample_ratio(uniform: &mut impl FnMut() -> f64) -> f64 {
    const MEAN: f64 = 0.6;
    const STD: f64 = 0.25;
    loop {
        let u1 = uniform().max(f64::MIN_POSITIVE);
        let u2 = uniform();
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        let r = MEAN + STD * z;
        if (0.4..=0.6).contains(&r) {
            return r;
        }
    }
}

/// Number of masked patches of `n` at ratio `r`.
pub fn masked_count(n: i64, r: f64) -> i64 {
    ((n as f64) * r).ceil() as i64
}

/// A (B, N) bool mask, B = `rows.len()`, with `masked_count(n, r)` true entries per row at
/// uniformly random positions (Fisher–Yates, row b drawing from `rows[b]`).
pub fn sample_mask(n: i64, r: f64, rows: &mut [SplitMix]) -> Tensor {
    let k = masked_count(n, r) as usize;
    let b = rows.len() as i64;
    let mut flags = vec![false; (b * n) as usize];
    let mut perm: Vec<usize> = Vec::with_capacity(n as usize);
    for (row, rng) in flags.chunks_exact_mut(n as usize).zip(rows.iter_mut()) {
        perm.clear();
        perm.extend(0..n as usize);
        for i in (1..perm.len()).rev() {
            let j = ((rng.uniform() * (i + 1) as f64) as usize).min(i);
            perm.swap(i, j);
        }
        for &p in &perm[..k] {
            row[p] = true;
        }
    }
    Tensor::from_slice(&flags).reshape([b, n])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The training runs' uniform source, seeded.
    fn rng(seed: u64) -> impl FnMut() -> f64 {
        let mut r = SplitMix::new(seed);
        move || r.uniform()
    }

    /// Spec §10b: quantiles (1, 25, 50, 75, 99 %) 0.4025, 0.4572, 0.5077, 0.5546, 0.5982;
    /// mean 0.5052.
    #[test]
    fn ratio_distribution_matches_spec() {
        let mut u = rng(1);
        let mut r: Vec<f64> = (0..400_000).map(|_| sample_ratio(&mut u)).collect();
        r.sort_by(f64::total_cmp);
        let q = |p: f64| r[((r.len() - 1) as f64 * p) as usize];
        for (p, want) in [
            (0.01, 0.4025),
            (0.25, 0.4572),
            (0.5, 0.5077),
            (0.75, 0.5546),
            (0.99, 0.5982),
        ] {
            assert!((q(p) - want).abs() < 1.5e-3, "q{p}: {} vs {want}", q(p));
        }
        let mean = r.iter().sum::<f64>() / r.len() as f64;
        assert!((mean - 0.5052).abs() < 1e-3, "{mean}");
        assert_eq!((masked_count(256, 0.4), masked_count(256, 0.6)), (103, 154));
    }

    #[test]
    fn masks_have_k_per_row_at_varying_positions() {
        let mut rows: Vec<SplitMix> = (0..4).map(SplitMix::new).collect();
        let m = sample_mask(256, 0.5, &mut rows);
        let per_row: Vec<i64> =
            Vec::try_from(m.sum_dim_intlist(1, false, tch::Kind::Int64)).unwrap();
        assert_eq!(per_row, [128; 4]);
        assert!(
            !m.get(0).equal(&m.get(1)),
            "rows use independent permutations"
        );
    }
}
