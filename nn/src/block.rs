//! The pre-norm ViT block: `x += ls1 · attn(norm1 x)`, `x += ls2 · mlp(norm2 x)`, with
//! LayerScale optional (DINOv2 and MAETok have it, SigLIP/CLIP do not).

use tch::Tensor;

use crate::init::{Init, LinearInit};
use crate::vars::VarBuilder;
use crate::weights::WeightError;
use crate::{Activation, Attention, LayerNorm, Mlp, QkHook};

/// What a block's constructor needs to know.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct BlockShape {
    pub width: i64,
    pub heads: i64,
    /// `fc1`'s outputs (both halves for the packed SwiGLU).
    pub hidden: i64,
    pub act: Activation,
    pub eps: f64,
    /// LayerScale γ at initialisation; `None`: the block has no LayerScale.
    pub layer_scale: Option<f64>,
}

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
    /// timm's names: `norm1`, `attn.{qkv,proj}`, `ls1.gamma`, `norm2`, `mlp.{fc1,fc2}`,
    /// `ls2.gamma`.
    pub fn new(vb: &VarBuilder, s: &BlockShape, init: LinearInit) -> Result<Self, WeightError> {
        let c = s.width;
        let gamma = |name: &str| -> Result<Option<Tensor>, WeightError> {
            s.layer_scale
                .map(|g| vb.pp(name).param("gamma", &[c], Init::Const(g)))
                .transpose()
        };
        Ok(Self {
            norm1: LayerNorm::new(&vb.pp("norm1"), c, s.eps)?,
            attn: Attention::new(&vb.pp("attn"), c, s.heads, init)?,
            ls1: gamma("ls1")?,
            norm2: LayerNorm::new(&vb.pp("norm2"), c, s.eps)?,
            mlp: Mlp::new(&vb.pp("mlp"), c, s.hidden, s.act, init)?,
            ls2: gamma("ls2")?,
        })
    }

    pub fn forward(&self, x: &Tensor, hook: Option<&dyn QkHook>) -> Tensor {
        let a = self.attn.forward(&self.norm1.forward(x), hook);
        let x = x + scaled(a, &self.ls1);
        let m = self.mlp.forward(&self.norm2.forward(&x));
        x + scaled(m, &self.ls2)
    }
}

fn scaled(x: Tensor, gamma: &Option<Tensor>) -> Tensor {
    match gamma {
        Some(g) => x * g,
        None => x,
    }
}
