//! LayerNorm over the last dimension, with or without an affine part (MoVQ blocks and the
//! auxiliary decoders use affine-free norms, spec §2.4).

use tch::Tensor;

#[derive(Debug)]
pub struct LayerNorm {
    pub weight: Option<Tensor>,
    pub bias: Option<Tensor>,
    pub dim: i64,
    pub eps: f64,
}

impl LayerNorm {
    pub fn new(weight: Tensor, bias: Tensor, eps: f64) -> Self {
        let dim = weight.size()[0];
        Self {
            weight: Some(weight),
            bias: Some(bias),
            dim,
            eps,
        }
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

    pub fn to(&self, device: tch::Device, kind: tch::Kind) -> Self {
        let mv = |t: &Option<Tensor>| t.as_ref().map(|t| t.to_device(device).to_kind(kind));
        Self {
            weight: mv(&self.weight),
            bias: mv(&self.bias),
            dim: self.dim,
            eps: self.eps,
        }
    }
}
