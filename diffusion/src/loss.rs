//! SiT's training objective (spec §7.2): from data x0, noise ε and times t, the model input
//! x_t = α·x0 + σ·ε and the velocity target v = α′·x0 + σ′·ε; the loss is the MSE between
//! predicted and target velocity, averaged over each sample's elements, then over the batch.
//! LightningDiT adds a cosine-direction term (spec §7.5, `use_cosine_loss`).

use tch::{Kind, Tensor};

use crate::PathKind;

/// What one training step feeds the network and compares its output with.
pub struct TrainingPair {
    /// x_t (B, T, C), in x0's dtype.
    pub input: Tensor,
    /// v (B, T, C).
    pub target: Tensor,
}

impl TrainingPair {
    /// `t` (B,) per sample.
    pub fn new(path: PathKind, x0: &Tensor, noise: &Tensor, t: &Tensor) -> Self {
        let mut shape = vec![t.size()[0]];
        shape.resize(x0.dim(), 1);
        let c = path.at_tensor(&t.to_kind(x0.kind()).reshape(&shape));
        Self {
            input: &c.alpha * x0 + &c.sigma * noise,
            target: &c.d_alpha * x0 + &c.d_sigma * noise,
        }
    }
}

/// Per-sample MSE (B,) in f32: the official `mean_flat((out − target)²)`.
pub fn velocity_mse(out: &Tensor, target: &Tensor) -> Tensor {
    let d = out.to_kind(Kind::Float) - target.to_kind(Kind::Float);
    let dims: Vec<i64> = (1..d.dim() as i64).collect();
    d.square().mean_dim(dims.as_slice(), false, Kind::Float)
}

/// Per-sample cosine-direction loss (B,) in f32: `1 − cos(out, target)` of each token's
/// channel vector, averaged over the tokens. LightningDiT's `mean_flat(1 −
/// cosine_similarity(out, target, dim=1))` over its (N, C, H, W) latents is per position over
/// the channels; on (B, T, C) tokens the channels are the last axis (spec §7.5: how MAETok
/// laid this over 1-D tokens is UNCONFIRMED). Velocities in either time convention give the
/// same value (both are negated).
pub fn cosine_direction(out: &Tensor, target: &Tensor) -> Tensor {
    let cos = Tensor::cosine_similarity(
        &out.to_kind(Kind::Float),
        &target.to_kind(Kind::Float),
        -1,
        1e-8,
    );
    let dims: Vec<i64> = (1..cos.dim() as i64).collect();
    (cos.neg() + 1.0).mean_dim(dims.as_slice(), false, Kind::Float)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// Parallel vectors cost 0, opposite ones 2, orthogonal ones 1; scale does not matter.
    #[test]
    fn cosine_direction_is_per_token_over_channels() {
        let opts = (Kind::Float, Device::Cpu);
        let a = Tensor::from_slice(&[1f32, 0.0, 0.0, 2.0]).reshape([1, 2, 2]);
        let same = cosine_direction(&a, &(&a * 3.0));
        let opposite = cosine_direction(&a, &(-&a));
        let b = Tensor::from_slice(&[0f32, 5.0, 1.0, 0.0]).reshape([1, 2, 2]);
        let orth = cosine_direction(&a, &b);
        let v = |t: Tensor| f64::try_from(t.sum(Kind::Float)).unwrap();
        assert!(v(same).abs() < 1e-6);
        assert!((v(opposite) - 2.0).abs() < 1e-6);
        assert!((v(orth) - 1.0).abs() < 1e-6);
        assert_eq!(
            cosine_direction(
                &Tensor::randn([3, 4, 5], opts),
                &Tensor::randn([3, 4, 5], opts)
            )
            .size(),
            [3]
        );
    }
}
