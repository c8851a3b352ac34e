//! The Inception Score as the ADM evaluator computes it (spec §8.2): the softmax of the
//! logits without the classifier bias, consecutive splits of 5,000 samples (10 for 50K; the
//! last may be shorter), per split `exp(mean_i KL(p_i ‖ mean p))`, and the mean over the
//! splits. Computed in f64 (the evaluator works in float32).

use tch::{Device, Kind, Tensor};

/// Samples per split in the ADM evaluator.
pub const SPLIT_SIZE: usize = 5000;

/// The score and the per-split scores, from logits (N, classes).
pub fn inception_score(logits: &Tensor, split_size: usize) -> (f64, Vec<f64>) {
    let p = logits
        .to_device(Device::Cpu)
        .to_kind(Kind::Double)
        .softmax(-1, Kind::Double);
    let n = p.size()[0] as usize;
    let mut scores = Vec::new();
    let mut start = 0;
    while start < n {
        let len = split_size.min(n - start);
        let part = p.narrow(0, start as i64, len as i64);
        let mean = part.mean_dim(0, true, Kind::Double);
        let kl = (&part * (part.log() - mean.log())).sum_dim_intlist(1, false, Kind::Double);
        scores.push(
            f64::try_from(kl.mean(Kind::Double))
                .unwrap_or(f64::NAN)
                .exp(),
        );
        start += len;
    }
    let is = scores.iter().sum::<f64>() / scores.len().max(1) as f64;
    (is, scores)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One-hot predictions over k classes, equally used, score k; identical ones score 1.
    #[test]
    fn extremes() {
        let k = 4;
        let eye = Tensor::eye(k, (Kind::Double, Device::Cpu)) * 100.0;
        let (s, parts) = inception_score(&eye.repeat([3, 1]), SPLIT_SIZE);
        assert!((s - k as f64).abs() < 1e-6, "{s}");
        assert_eq!(parts.len(), 1);
        let same = Tensor::zeros([6, k], (Kind::Double, Device::Cpu));
        assert!((inception_score(&same, 2).0 - 1.0).abs() < 1e-12);
        assert_eq!(inception_score(&same, 4).1.len(), 2);
    }
}
