//! Patch embedding: a p×p convolution with stride p, flattened to tokens in row-major
//! patch order, (B, 3, H, W) -> (B, H/p · W/p, C).

use tch::Tensor;

#[derive(Debug)]
pub struct PatchEmbed {
    /// (C, 3, p, p)
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl PatchEmbed {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
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
