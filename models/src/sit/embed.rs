//! SiT's fixed encodings (spec §7.1): the interleaved 1-D sinusoid over token positions and
//! the [cos | sin] frequency embedding of t ∈ [0, 1] (unscaled), with the time MLP.

use maetok_nn::vars::VarBuilder;
use maetok_nn::{Linear, LinearInit, WeightError};
use tch::{Device, Kind, Tensor};

/// Width of t's frequency embedding (128 frequencies, cos then sin).
pub const FREQUENCY_DIM: i64 = 256;

/// `positionalencoding1d(dim, len)`: (len, dim) f32 with even dims sin(pos·ω_k) and odd
/// dims cos(pos·ω_k), ω_k = exp(2k · −ln(10000)/dim), computed in f32 as the reference does.
pub fn sincos_1d(len: i64, dim: i64) -> Tensor {
    let opts = (Kind::Float, Device::Cpu);
    let position = Tensor::arange(len, opts).unsqueeze(1);
    let omega = (Tensor::arange_start_step(0, dim, 2, opts) * -(10000f64.ln() / dim as f64)).exp();
    let arg = position * omega.unsqueeze(0);
    // Interleave: stack (sin, cos) on a last axis and flatten it into the pairs.
    Tensor::stack(&[arg.sin(), arg.cos()], -1).reshape([len, dim])
}

/// t (B,) → (B, `dim`) f32: `[cos(t·f_i) | sin(t·f_i)]`, f_i = exp(−ln(10000)·i/half).
pub fn time_frequencies(t: &Tensor, dim: i64) -> Tensor {
    let half = dim / 2;
    let opts = (Kind::Float, t.device());
    let freqs = (Tensor::arange(half, opts) * -(10000f64.ln()) / half as f64).exp();
    let args = t.to_kind(Kind::Float).unsqueeze(1) * freqs.unsqueeze(0);
    Tensor::cat(&[args.cos(), args.sin()], -1)
}

/// `t_embedder`: frequency embedding → Linear → SiLU → Linear.
#[derive(Debug)]
pub struct TimestepEmbedder {
    pub fc1: Linear,
    pub fc2: Linear,
}

impl TimestepEmbedder {
    /// `vb` at `t_embedder`; the official init draws both weights N(0, 0.02).
    pub fn new(vb: &VarBuilder, width: i64) -> Result<Self, WeightError> {
        let init = LinearInit::Normal(0.02);
        Ok(Self {
            fc1: Linear::new(&vb.pp("mlp.0"), FREQUENCY_DIM, width, init)?,
            fc2: Linear::new(&vb.pp("mlp.2"), width, width, init)?,
        })
    }

    /// t (B,) → (B, width) in the layers' dtype.
    pub fn forward(&self, t: &Tensor) -> Tensor {
        let f = time_frequencies(t, FREQUENCY_DIM).to_kind(self.fc1.weight.kind());
        self.fc2.forward(&self.fc1.forward(&f).silu())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: &Tensor, i: i64, j: i64) -> f64 {
        t.double_value(&[i, j])
    }

    /// Spec §10b's numeric checks.
    #[test]
    fn encodings_match_the_spec_values() {
        let t = time_frequencies(&Tensor::from_slice(&[0.5f32]), FREQUENCY_DIM);
        for (j, want) in [(0, 0.877583), (1, 0.893693), (2, 0.907719), (128, 0.479426)] {
            assert!((at(&t, 0, j) - want).abs() < 1e-6, "t emb dim {j}");
        }
        assert!((at(&t, 0, 129) - 0.448678).abs() < 1e-6);
        assert!((at(&t, 0, 255) - 5.373e-05).abs() < 1e-8);
        let pe = sincos_1d(128, 1152);
        for (j, want) in [(0, -0.958924), (1, 0.283662), (2, -0.978385), (3, 0.206793)] {
            assert!((at(&pe, 5, j) - want).abs() < 1e-6, "pe dim {j}");
        }
        assert!((at(&pe, 127, 1150) - 0.0129044).abs() < 1e-6);
        assert!((at(&pe, 127, 1151) - 0.9999167).abs() < 1e-6);
    }
}
