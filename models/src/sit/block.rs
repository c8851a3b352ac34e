//! SiT's adaLN-Zero block and final layer (spec §7.1).

use maetok_nn::adaln::{modulate, AdaLn};
use maetok_nn::vars::VarBuilder;
use maetok_nn::{Activation, Attention, LayerNorm, Linear, LinearInit, Mlp, QkNorm, WeightError};
use tch::Tensor;

use super::SitConfig;

/// The blocks' and final layer's norms: affine-free LayerNorm, eps 1e-6.
const EPS: f64 = 1e-6;
/// `nn.LayerNorm`'s default eps, which the optional qk-norm uses.
const QK_EPS: f64 = 1e-5;

#[derive(Debug)]
pub struct SitBlock {
    pub norm1: LayerNorm,
    pub attn: Attention,
    pub qk_norm: Option<QkNorm>,
    pub norm2: LayerNorm,
    pub mlp: Mlp,
    /// shift/scale/gate for attention, then for the MLP.
    pub ada: AdaLn,
}

impl SitBlock {
    /// `vb` at `blocks.{i}`; Xavier-uniform Linears with zero biases, adaLN zero (the
    /// official `initialize_weights`).
    pub fn new(vb: &VarBuilder, cfg: &SitConfig) -> Result<Self, WeightError> {
        let c = cfg.hidden_size;
        let attn = vb.pp("attn");
        Ok(Self {
            norm1: LayerNorm::affine_free(c, EPS),
            attn: Attention::new(&attn, c, cfg.num_heads, LinearInit::Xavier)?,
            qk_norm: cfg
                .qk_norm
                .then(|| QkNorm::new(&attn, c / cfg.num_heads, QK_EPS))
                .transpose()?,
            norm2: LayerNorm::affine_free(c, EPS),
            mlp: Mlp::new(
                &vb.pp("mlp"),
                c,
                cfg.mlp_hidden(),
                Activation::GeluTanh,
                LinearInit::Xavier,
            )?,
            ada: AdaLn::new(vb, c, c, 6, LinearInit::Zeros)?,
        })
    }

    /// x (B, T, C), c (B, C).
    pub fn forward(&self, x: &Tensor, c: &Tensor) -> Tensor {
        let m = self.ada.forward(c);
        let hook = self.qk_norm.as_ref().map(|q| q as &dyn maetok_nn::QkHook);
        let a = self
            .attn
            .forward(&modulate(&self.norm1.forward(x), &m[0], &m[1]), hook);
        let x = x + m[2].unsqueeze(1) * a;
        let h = self
            .mlp
            .forward(&modulate(&self.norm2.forward(&x), &m[3], &m[4]));
        x + m[5].unsqueeze(1) * h
    }
}

#[derive(Debug)]
pub struct FinalLayer {
    pub norm: LayerNorm,
    pub ada: AdaLn,
    pub linear: Linear,
}

impl FinalLayer {
    /// `vb` at `final_layer`; every tensor zero-initialised (so a fresh SiT outputs 0).
    pub fn new(vb: &VarBuilder, cfg: &SitConfig) -> Result<Self, WeightError> {
        let c = cfg.hidden_size;
        Ok(Self {
            norm: LayerNorm::affine_free(c, EPS),
            ada: AdaLn::new(vb, c, c, 2, LinearInit::Zeros)?,
            linear: Linear::new(&vb.pp("linear"), c, cfg.in_channels, LinearInit::Zeros)?,
        })
    }

    pub fn forward(&self, x: &Tensor, c: &Tensor) -> Tensor {
        let m = self.ada.forward(c);
        self.linear
            .forward(&modulate(&self.norm.forward(x), &m[0], &m[1]))
    }
}
