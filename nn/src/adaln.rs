//! adaLN modulation (DiT, SiT, LightningDiT): the conditioning vector c goes through
//! `SiLU → Linear(c → n·C)` and is chunked into n per-sample vectors (shifts, scales,
//! gates), which modulate an affine-free norm's output as `x · (1 + scale) + shift`.

use tch::Tensor;

use crate::init::LinearInit;
use crate::vars::VarBuilder;
use crate::weights::WeightError;
use crate::Linear;

#[derive(Debug)]
pub struct AdaLn {
    /// `adaLN_modulation.1` (index 1 of the official `nn.Sequential(SiLU, Linear)`).
    pub linear: Linear,
    pub chunks: i64,
}

impl AdaLn {
    /// `vb` at the module holding `adaLN_modulation`; `cond` inputs, `chunks × width` outputs.
    pub fn new(
        vb: &VarBuilder,
        cond: i64,
        width: i64,
        chunks: i64,
        init: LinearInit,
    ) -> Result<Self, WeightError> {
        Ok(Self {
            linear: Linear::new(&vb.pp("adaLN_modulation.1"), cond, chunks * width, init)?,
            chunks,
        })
    }

    /// c (B, cond) → `chunks` tensors (B, width), in the official order.
    pub fn forward(&self, c: &Tensor) -> Vec<Tensor> {
        self.linear.forward(&c.silu()).chunk(self.chunks, -1)
    }
}

/// `x · (1 + scale) + shift` with per-sample (B, C) `shift` / `scale` over x (B, N, C).
pub fn modulate(x: &Tensor, shift: &Tensor, scale: &Tensor) -> Tensor {
    x * (scale.unsqueeze(1) + 1.0) + shift.unsqueeze(1)
}
