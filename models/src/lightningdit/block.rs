//! LightningDiT's block and final layer (spec §7.5; `hustvl/LightningDiT`
//! `models/lightningdit.py`): adaLN (with or without shifts) around attention and an MLP,
//! RMSNorm or affine-free LayerNorm, optional qk-norm and rotary q/k, SwiGLU or tanh-GELU.

use maetok_nn::adaln::AdaLn;
use maetok_nn::rope::RotaryTable;
use maetok_nn::vars::VarBuilder;
use maetok_nn::{
    Activation, Attention, LayerNorm, Linear, LinearInit, Mlp, QkHook, RmsNorm, WeightError,
};
use tch::Tensor;

use super::LightningDitConfig;

/// The block and final norms' eps (LayerNorm's and the RMSNorm class's default alike).
const EPS: f64 = 1e-6;
/// `nn.LayerNorm`'s default eps, which a LayerNorm qk-norm uses.
const QK_LN_EPS: f64 = 1e-5;

/// RMSNorm with a gain (`use_rmsnorm`) or LayerNorm.
#[derive(Debug)]
pub enum Norm {
    Layer(LayerNorm),
    Rms(RmsNorm),
}

impl Norm {
    pub fn forward(&self, x: &Tensor) -> Tensor {
        match self {
            Self::Layer(n) => n.forward(x),
            Self::Rms(n) => n.forward(x),
        }
    }

    /// A block or final norm at `vb`: RMSNorm(width) with `weight`, or affine-free LayerNorm.
    fn outer(vb: &VarBuilder, width: i64, rms: bool) -> Result<Self, WeightError> {
        Ok(if rms {
            Self::Rms(RmsNorm::new(vb, width, EPS)?)
        } else {
            Self::Layer(LayerNorm::affine_free(width, EPS))
        })
    }

    /// A qk-norm at `vb`: the official `Attention` swaps its `norm_layer` for RMSNorm when
    /// `use_rmsnorm`, else keeps `nn.LayerNorm` (affine, eps 1e-5).
    fn head(vb: &VarBuilder, head_dim: i64, rms: bool) -> Result<Self, WeightError> {
        Ok(if rms {
            Self::Rms(RmsNorm::new(vb, head_dim, EPS)?)
        } else {
            Self::Layer(LayerNorm::new(vb, head_dim, QK_LN_EPS)?)
        })
    }
}

/// `x · (1 + scale) + shift`, or without the shift (`wo_shift`).
fn modulate(x: &Tensor, shift: Option<&Tensor>, scale: &Tensor) -> Tensor {
    let x = x * (scale.unsqueeze(1) + 1.0);
    match shift {
        Some(s) => x + s.unsqueeze(1),
        None => x,
    }
}

/// What the official attention does to q and k before the product: qk-norm, then RoPE.
struct QkSteps<'a> {
    norm: Option<&'a (Norm, Norm)>,
    rope: Option<&'a RotaryTable>,
}

impl QkHook for QkSteps<'_> {
    fn apply(&self, q: &Tensor, k: &Tensor) -> (Tensor, Tensor) {
        let (q, k) = match self.norm {
            Some((nq, nk)) => (nq.forward(q), nk.forward(k)),
            None => (q.shallow_clone(), k.shallow_clone()),
        };
        match self.rope {
            Some(r) => (r.rotate(&q), r.rotate(&k)),
            None => (q, k),
        }
    }
}

#[derive(Debug)]
pub struct LightningDitBlock {
    pub norm1: Norm,
    pub attn: Attention,
    /// `attn.q_norm`, `attn.k_norm`.
    pub qk_norm: Option<(Norm, Norm)>,
    pub norm2: Norm,
    pub mlp: Mlp,
    /// (shift, scale, gate) for attention then the MLP, or (scale, gate) twice.
    pub ada: AdaLn,
    pub wo_shift: bool,
}

impl LightningDitBlock {
    /// `vb` at `blocks.{i}`; Xavier-uniform Linears with zero biases, adaLN zero (the
    /// official `initialize_weights`), norm gains one.
    pub fn new(vb: &VarBuilder, cfg: &LightningDitConfig) -> Result<Self, WeightError> {
        let c = cfg.hidden_size;
        let attn = vb.pp("attn");
        let qk_norm = if cfg.use_qknorm {
            let d = cfg.head_dim();
            Some((
                Norm::head(&attn.pp("q_norm"), d, cfg.use_rmsnorm)?,
                Norm::head(&attn.pp("k_norm"), d, cfg.use_rmsnorm)?,
            ))
        } else {
            None
        };
        let mlp = if cfg.use_swiglu {
            // `SwiGLUFFN`: w12 emits [x1 | x2], hidden = silu(x1) · x2, then w3.
            Mlp::with_names(
                &vb.pp("mlp"),
                ("w12", "w3"),
                c,
                2 * cfg.mlp_hidden(),
                Activation::SwiGlu,
                LinearInit::Xavier,
            )?
        } else {
            Mlp::new(
                &vb.pp("mlp"),
                c,
                cfg.mlp_hidden(),
                Activation::GeluTanh,
                LinearInit::Xavier,
            )?
        };
        Ok(Self {
            norm1: Norm::outer(&vb.pp("norm1"), c, cfg.use_rmsnorm)?,
            attn: Attention::new(&attn, c, cfg.num_heads, LinearInit::Xavier)?,
            qk_norm,
            norm2: Norm::outer(&vb.pp("norm2"), c, cfg.use_rmsnorm)?,
            mlp,
            ada: AdaLn::new(vb, c, c, cfg.block_chunks(), LinearInit::Zeros)?,
            wo_shift: cfg.wo_shift,
        })
    }

    /// x (B, T, C), c (B, C), the shared rotary table if the model has one.
    pub fn forward(&self, x: &Tensor, c: &Tensor, rope: Option<&RotaryTable>) -> Tensor {
        let m = self.ada.forward(c);
        // (shift?, scale, gate) for attention, then for the MLP.
        let (msa, mlp) = if self.wo_shift {
            ((None, &m[0], &m[1]), (None, &m[2], &m[3]))
        } else {
            ((Some(&m[0]), &m[1], &m[2]), (Some(&m[3]), &m[4], &m[5]))
        };
        let hook = QkSteps {
            norm: self.qk_norm.as_ref(),
            rope,
        };
        let a = self
            .attn
            .forward(&modulate(&self.norm1.forward(x), msa.0, msa.1), Some(&hook));
        let x = x + msa.2.unsqueeze(1) * a;
        let h = self
            .mlp
            .forward(&modulate(&self.norm2.forward(&x), mlp.0, mlp.1));
        x + mlp.2.unsqueeze(1) * h
    }
}

#[derive(Debug)]
pub struct FinalLayer {
    pub norm: Norm,
    pub ada: AdaLn,
    pub linear: Linear,
}

impl FinalLayer {
    /// `vb` at `final_layer`; adaLN and the output Linear zero (a fresh model outputs 0).
    pub fn new(vb: &VarBuilder, cfg: &LightningDitConfig) -> Result<Self, WeightError> {
        let c = cfg.hidden_size;
        Ok(Self {
            norm: Norm::outer(&vb.pp("norm_final"), c, cfg.use_rmsnorm)?,
            ada: AdaLn::new(vb, c, c, 2, LinearInit::Zeros)?,
            linear: Linear::new(&vb.pp("linear"), c, cfg.in_channels, LinearInit::Zeros)?,
        })
    }

    pub fn forward(&self, x: &Tensor, c: &Tensor) -> Tensor {
        let m = self.ada.forward(c);
        self.linear
            .forward(&modulate(&self.norm.forward(x), Some(&m[0]), &m[1]))
    }
}
