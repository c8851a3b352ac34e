//! Patch embedding: a p×p convolution with stride p, flattened to tokens in row-major
//! patch order, (B, 3, H, W) -> (B, H/p · W/p, C).

use tch::Tensor;

use crate::init::Init;
use crate::vars::VarBuilder;
use crate::weights::WeightError;

#[derive(Debug)]
pub struct PatchEmbed {
    /// (C, 3, p, p)
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl PatchEmbed {
    /// `proj.weight` (C, 3, p, p) and, with `bias`, `proj.bias`, initialised as PyTorch's
    /// default `nn.Conv2d` (U(±1/√(3p²))).
    pub fn new(vb: &VarBuilder, width: i64, patch: i64, bias: bool) -> Result<Self, WeightError> {
        let vb = vb.pp("proj");
        let init = Init::torch_default(3 * patch * patch);
        Ok(Self {
            weight: vb.param("weight", &[width, 3, patch, patch], init)?,
            bias: if bias {
                Some(vb.param("bias", &[width], init)?)
            } else {
                None
            },
        })
    }

    /// From tensors at hand (a kernel resampled at load time).
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    pub fn patch_size(&self) -> (i64, i64) {
        let s = self.weight.size();
        (s[2], s[3])
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let (ph, pw) = self.patch_size();
        let y = x.conv2d(
            &self.weight,
            self.bias.as_ref(),
            [ph, pw],
            [0, 0],
            [1, 1],
            1,
        );
        // (B, C, gh, gw) -> (B, gh·gw, C)
        y.flatten(2, 3).transpose(1, 2)
    }
}
