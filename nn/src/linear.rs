//! `y = x Wᵀ + b`, the PyTorch `nn.Linear` convention (weight stored as (out, in)).

use tch::Tensor;

use crate::init::LinearInit;
use crate::vars::VarBuilder;
use crate::weights::WeightError;

#[derive(Debug)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    /// `weight` (out, in) and `bias` (out).
    pub fn new(vb: &VarBuilder, inp: i64, out: i64, init: LinearInit) -> Result<Self, WeightError> {
        let (wi, bi) = init.parts(inp, out);
        Ok(Self {
            weight: vb.param("weight", &[out, inp], wi)?,
            bias: Some(vb.param("bias", &[out], bi)?),
        })
    }

    /// `weight` only (CLIP's bias-free projections).
    pub fn no_bias(
        vb: &VarBuilder,
        inp: i64,
        out: i64,
        init: LinearInit,
    ) -> Result<Self, WeightError> {
        Ok(Self {
            weight: vb.param("weight", &[out, inp], init.parts(inp, out).0)?,
            bias: None,
        })
    }

    /// From tensors at hand (tests).
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.weight, self.bias.as_ref())
    }

    pub fn out_features(&self) -> i64 {
        self.weight.size()[0]
    }
}
