//! Normalisation over the last dimension: LayerNorm with or without an affine part (MoVQ
//! blocks and the auxiliary decoders use affine-free norms, spec §2.4), and RMSNorm
//! (LightningDiT's blocks).

use tch::Tensor;

use crate::init::Init;
use crate::vars::VarBuilder;
use crate::weights::WeightError;

#[derive(Debug)]
pub struct LayerNorm {
    pub weight: Option<Tensor>,
    pub bias: Option<Tensor>,
    pub dim: i64,
    pub eps: f64,
}

impl LayerNorm {
    /// Affine: `weight` (ones) and `bias` (zeros), width `dim`.
    pub fn new(vb: &VarBuilder, dim: i64, eps: f64) -> Result<Self, WeightError> {
        Ok(Self {
            weight: Some(vb.param("weight", &[dim], Init::Ones)?),
            bias: Some(vb.param("bias", &[dim], Init::Zeros)?),
            dim,
            eps,
        })
    }

    pub fn affine_free(dim: i64, eps: f64) -> Self {
        Self {
            weight: None,
            bias: None,
            dim,
            eps,
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.layer_norm(
            [self.dim],
            self.weight.as_ref(),
            self.bias.as_ref(),
            self.eps,
            true,
        )
    }
}

/// `x / sqrt(mean(x²) + eps) · weight`, computed in fp32 and returned in `x`'s dtype
/// (`torch.nn.RMSNorm` semantics with an affine weight).
#[derive(Debug)]
pub struct RmsNorm {
    pub weight: Tensor,
    pub eps: f64,
}

impl RmsNorm {
    /// `weight` (ones), width `dim`.
    pub fn new(vb: &VarBuilder, dim: i64, eps: f64) -> Result<Self, WeightError> {
        Ok(Self {
            weight: vb.param("weight", &[dim], Init::Ones)?,
            eps,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let kind = x.kind();
        let xf = x.to_kind(tch::Kind::Float);
        let rms = (xf.square().mean_dim(-1, true, tch::Kind::Float) + self.eps).rsqrt();
        (xf * rms).to_kind(kind) * &self.weight
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// RMSNorm against libtorch's own `rms_norm` (what `torch.nn.RMSNorm` calls).
    #[test]
    fn rms_norm_matches_libtorch() {
        tch::manual_seed(0);
        let opts = (Kind::Float, Device::Cpu);
        let x = Tensor::randn([2, 5, 8], opts) * 3.0;
        let w = Tensor::randn([8], opts);
        let ours = RmsNorm {
            weight: w.shallow_clone(),
            eps: 1e-6,
        }
        .forward(&x);
        let theirs = x.rms_norm([8], Some(&w), 1e-6);
        let err = f64::try_from((&ours - &theirs).abs().max()).unwrap();
        assert!(err < 1e-5, "{err}");
    }
}
