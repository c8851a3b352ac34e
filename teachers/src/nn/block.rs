//! The pre-norm ViT block: `x += ls1 · attn(norm1 x)`, `x += ls2 · mlp(norm2 x)`, with
//! LayerScale optional (DINOv2 has it, SigLIP/CLIP do not).

use tch::Tensor;

use super::{Attention, LayerNorm, Mlp, QkHook};

#[derive(Debug)]
pub struct Block {
    pub norm1: LayerNorm,
    pub attn: Attention,
    /// LayerScale γ₁ (C,), if present.
    pub ls1: Option<Tensor>,
    pub norm2: LayerNorm,
    pub mlp: Mlp,
    pub ls2: Option<Tensor>,
}

impl Block {
    pub fn forward(&self, x: &Tensor, hook: Option<&dyn QkHook>) -> Tensor {
        let a = self.attn.forward(&self.norm1.forward(x), hook);
        let x = x + scaled(a, &self.ls1);
        let m = self.mlp.forward(&self.norm2.forward(&x));
        x + scaled(m, &self.ls2)
    }

    pub fn to(&self, device: tch::Device, kind: tch::Kind) -> Self {
        let mv = |t: &Option<Tensor>| t.as_ref().map(|t| t.to_device(device).to_kind(kind));
        Self {
            norm1: self.norm1.to(device, kind),
            attn: self.attn.to(device, kind),
            ls1: mv(&self.ls1),
            norm2: self.norm2.to(device, kind),
            mlp: self.mlp.to(device, kind),
            ls2: mv(&self.ls2),
        }
    }
}

fn scaled(x: Tensor, gamma: &Option<Tensor>) -> Tensor {
    match gamma {
        Some(g) => x * g,
        None => x,
    }
}
