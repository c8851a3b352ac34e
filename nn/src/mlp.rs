//! Transformer MLPs: `fc2(act(fc1 x))` with exact GELU (DINOv2, the tokenizer), tanh GELU
//! (SigLIP, SiT), quick-GELU (OpenAI CLIP), and the packed SwiGLU of DINOv2-G, where `fc1`
//! emits both halves and the first half is gated: `fc2(silu(a) * b)` with `[a | b] = fc1 x`
//! (timm `SwiGLUPacked`, HF `Dinov2SwiGLUFFN`).

use tch::Tensor;

use crate::init::LinearInit;
use crate::vars::VarBuilder;
use crate::weights::WeightError;
use crate::Linear;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `nn.GELU()` (erf form).
    Gelu,
    /// `nn.GELU(approximate="tanh")`, HF `gelu_pytorch_tanh`.
    GeluTanh,
    /// `x · sigmoid(1.702 x)`, what OpenAI's CLIP weights were trained with.
    QuickGelu,
    /// Packed SwiGLU (see module docs).
    SwiGlu,
}

impl Activation {
    /// Parse the activation names used by HF configs and timm (`act_layer`).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "gelu" | "gelu_erf" => Self::Gelu,
            "gelu_tanh" | "gelu_pytorch_tanh" | "gelu_new" | "gelu_fast" => Self::GeluTanh,
            "quick_gelu" | "quickgelu" => Self::QuickGelu,
            "swiglu" | "silu_glu" => Self::SwiGlu,
            _ => return None,
        })
    }

    pub fn apply(self, x: &Tensor) -> Tensor {
        match self {
            Self::Gelu => x.gelu("none"),
            Self::GeluTanh => x.gelu("tanh"),
            Self::QuickGelu => x * (x * 1.702).sigmoid(),
            Self::SwiGlu => {
                let halves = x.chunk(2, -1);
                halves[0].silu() * &halves[1]
            }
        }
    }
}

#[derive(Debug)]
pub struct Mlp {
    pub fc1: Linear,
    pub fc2: Linear,
    pub act: Activation,
}

impl Mlp {
    /// `fc1` (hidden, C) and `fc2` (C, hidden), or (C, hidden / 2) for the packed SwiGLU,
    /// whose `fc1` emits both halves.
    pub fn new(
        vb: &VarBuilder,
        width: i64,
        hidden: i64,
        act: Activation,
        init: LinearInit,
    ) -> Result<Self, WeightError> {
        Self::with_names(vb, ("fc1", "fc2"), width, hidden, act, init)
    }

    /// The same with the two layers under other names (LightningDiT's SwiGLU: `w12`, `w3`).
    pub fn with_names(
        vb: &VarBuilder,
        names: (&str, &str),
        width: i64,
        hidden: i64,
        act: Activation,
        init: LinearInit,
    ) -> Result<Self, WeightError> {
        let fc2_in = if act == Activation::SwiGlu {
            hidden / 2
        } else {
            hidden
        };
        Ok(Self {
            fc1: Linear::new(&vb.pp(names.0), width, hidden, init)?,
            fc2: Linear::new(&vb.pp(names.1), fc2_in, width, init)?,
            act,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.fc2.forward(&self.act.apply(&self.fc1.forward(x)))
    }
}
