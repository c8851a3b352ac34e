//! SiT's training objective (spec §7.2): from data x0, noise ε and times t, the model input
//! x_t = α·x0 + σ·ε and the velocity target v = α′·x0 + σ′·ε; the loss is the MSE between
//! predicted and target velocity, averaged over each sample's elements, then over the batch.

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
