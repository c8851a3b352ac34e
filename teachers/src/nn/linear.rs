//! `y = x Wᵀ + b`, the PyTorch `nn.Linear` convention (weight stored as (out, in)).

use tch::Tensor;

#[derive(Debug)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.weight, self.bias.as_ref())
    }

    pub fn out_features(&self) -> i64 {
        self.weight.size()[0]
    }

    /// Move/cast every tensor (e.g. to CUDA and bf16).
    pub fn to(&self, device: tch::Device, kind: tch::Kind) -> Self {
        Self {
            weight: self.weight.to_device(device).to_kind(kind),
            bias: self
                .bias
                .as_ref()
                .map(|b| b.to_device(device).to_kind(kind)),
        }
    }
}
