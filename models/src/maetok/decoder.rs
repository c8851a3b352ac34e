//! The MAETok pixel decoder (spec §2.4): one shared mask token for every image row (told
//! apart only by RoPE, no absolute positions), the projected latents with their 1-D
//! positions appended, and either MoVQ blocks (affine-free LayerNorms whose latent rows are
//! modulated `x · scale + shift` from the raw latent, no LayerScale) or plain timm blocks
//! (optionally with a class token), chosen from the checkpoint's keys (spec §2.7). The image
//! rows go through `to_pixel` and are unpatchified.

use maetok_nn::rope::{grid_positions, init_mixed_freqs, layer_phases};
use maetok_nn::{
    Activation, Attention, Block, Init, LayerNorm, Linear, LinearInit, Mlp, VarBuilder, WeightError,
};
use tch::Tensor;

use super::shape::{DecoderShape, MaetokShape, EPS};

enum DecBlock {
    Movq {
        attn: Attention,
        mlp: Mlp,
        ada: Linear,
    },
    Plain(Block),
}

enum FinalNorm {
    /// `(shift, scale)` from the raw latent, latent rows only.
    Movq(Linear),
    Plain(LayerNorm),
}

/// Which decoder a checkpoint holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum DecoderKind {
    Movq,
    Plain,
}

/// Where a decoder's tensors live in a state dict: the pixel decoder (`decoder.*`,
/// `post_quant_conv`, `decoder.to_pixel.model`) or an auxiliary one (`decoder_hog.*`,
/// `post_quant_conv_hog`, `to_pixel_hog`, spec §4.1).
#[derive(Debug, Clone)]
pub struct DecoderNames {
    pub prefix: String,
    pub post_quant_conv: String,
    pub to_pixel: String,
}

impl DecoderNames {
    pub fn pixel() -> Self {
        Self {
            prefix: "decoder".into(),
            post_quant_conv: "post_quant_conv".into(),
            to_pixel: "decoder.to_pixel.model".into(),
        }
    }

    /// The auxiliary decoder of target `name` (`hog`, `dino`, `clip`).
    pub fn aux(name: &str) -> Self {
        Self {
            prefix: format!("decoder_{name}"),
            post_quant_conv: format!("post_quant_conv_{name}"),
            to_pixel: format!("to_pixel_{name}"),
        }
    }
}

pub struct Decoder {
    pub names: DecoderNames,
    pub kind: DecoderKind,
    post_quant_conv: Linear,
    mask_token: Tensor,
    cls_token: Option<Tensor>,
    latent_pos_embed: Tensor,
    freqs: Tensor,
    blocks: Vec<DecBlock>,
    final_norm: FinalNorm,
    to_pixel: Linear,
    pub width: i64,
    pub heads: i64,
    /// Outputs per image token of `to_pixel` (3·p² for the pixel decoder).
    pub out_dim: i64,
    pub num_latent: i64,
}

/// `x` with its last `l` rows replaced by `rows`.
fn with_latent_rows(x: &Tensor, l: i64, rows: Tensor) -> Tensor {
    let s = x.size()[1];
    Tensor::cat(&[x.narrow(1, 0, s - l), rows], 1)
}

impl Decoder {
    /// The decoder `d` stored under `names` (`vb` at the state dict's root), reading latents
    /// of the tokenizer `s`. Fresh tensors follow spec §2.5 in the reference's order:
    /// PyTorch's default init for `post_quant_conv` and `to_pixel`, 0.02 for the mask token
    /// and latent positions, timm's ViT init for the blocks, zero MoVQ adaLN; the timm
    /// `pos_embed` / `patch_embed` the decoder carries but never reads are drawn too, so a
    /// fresh model has every tensor of the released layout.
    pub fn new(
        vb: &VarBuilder,
        names: DecoderNames,
        d: &DecoderShape,
        s: &MaetokShape,
    ) -> Result<Self, WeightError> {
        let t = &d.tower;
        let (c, g, z) = (t.width, s.grid, s.latent_dim);
        let n = g * g;
        let post_quant_conv = Linear::new(
            &vb.pp(&names.post_quant_conv),
            z,
            c,
            LinearInit::TorchDefault,
        )?;
        let dv = vb.pp(&names.prefix);
        let mask_token = dv.param("mask_token", &[1, 1, c], Init::Randn(0.02))?;
        let latent_pos_embed = dv.param(
            "latent_pos_embed",
            &[1, s.num_latent, c],
            Init::TruncNormal(0.02),
        )?;
        let freqs = dv.param_f32_with("freqs", &[2, t.depth, c / 2], || {
            init_mixed_freqs(t.depth, t.heads, c / t.heads, s.rope_theta)
        })?;
        // Built by timm but never used by the decoder (spec §2.4, §4.1).
        dv.unused("freqs_t_x", Some(|| grid_positions(g).0))?;
        dv.unused("freqs_t_y", Some(|| grid_positions(g).1))?;
        let m = dv.pp("model");
        m.unused(
            "pos_embed",
            Some(|| Init::TruncNormal(0.02).draw(&[1, n + 1, c])),
        )?;
        let pe = m.pp("patch_embed").pp("proj");
        let pe_init = Init::torch_default(3 * s.patch * s.patch);
        pe.unused("weight", Some(|| pe_init.draw(&[c, 3, s.patch, s.patch])))?;
        pe.unused("bias", Some(|| pe_init.draw(&[c])))?;
        m.pp("head").unused("weight", None::<fn() -> Tensor>)?;
        m.pp("head").unused("bias", None::<fn() -> Tensor>)?;
        let cls_token = t
            .cls_token
            .then(|| m.param("cls_token", &[1, 1, c], Init::Randn(1e-6)))
            .transpose()?;
        let mut blocks = Vec::with_capacity(t.depth as usize);
        for i in 0..t.depth {
            let b = m.pp("blocks").pp(i);
            blocks.push(if d.movq {
                DecBlock::Movq {
                    attn: Attention::new(&b.pp("attn"), c, t.heads, LinearInit::Timm)?,
                    mlp: Mlp::new(
                        &b.pp("mlp"),
                        c,
                        t.hidden,
                        Activation::Gelu,
                        LinearInit::Timm,
                    )?,
                    ada: Linear::new(&b.pp("adaLN_modulation.1"), z, 4 * c, LinearInit::Zeros)?,
                }
            } else {
                DecBlock::Plain(Block::new(
                    &b,
                    &t.block(s.layer_scale_init),
                    LinearInit::Timm,
                )?)
            });
        }
        let final_norm = if d.movq {
            FinalNorm::Movq(Linear::new(
                &m.pp("norm.adaLN_modulation.1"),
                z,
                2 * c,
                LinearInit::Zeros,
            )?)
        } else {
            FinalNorm::Plain(LayerNorm::new(&m.pp("norm"), c, EPS)?)
        };
        let to_pixel = Linear::new(
            &vb.pp(&names.to_pixel),
            c,
            d.out_dim,
            LinearInit::TorchDefault,
        )?;
        Ok(Self {
            names,
            kind: if d.movq {
                DecoderKind::Movq
            } else {
                DecoderKind::Plain
            },
            post_quant_conv,
            mask_token,
            cls_token,
            latent_pos_embed,
            freqs,
            blocks,
            final_norm,
            to_pixel,
            width: c,
            heads: t.heads,
            out_dim: d.out_dim,
            num_latent: s.num_latent,
        })
    }

    /// The `to_pixel` weight: the "last layer" the adaptive GAN weight is measured on.
    pub fn last_layer(&self) -> &Tensor {
        &self.to_pixel.weight
    }

    /// Pixel patch size (`to_pixel` emits 3·p² values per token).
    pub fn patch(&self) -> i64 {
        ((self.out_dim / 3) as f64).sqrt().round() as i64
    }

    /// `z` (B, L, C_z) → image (B, 3, gh·p, gw·p), unclamped.
    pub fn forward(&self, z: &Tensor, grid: (i64, i64)) -> Tensor {
        let (gh, gw) = grid;
        let b = z.size()[0];
        let p = self.patch();
        self.forward_tokens(z, grid)
            .reshape([b, gh, gw, p, p, 3])
            .permute([0, 5, 1, 3, 2, 4])
            .reshape([b, 3, gh * p, gw * p])
    }

    /// `z` (B, L, C_z) → `to_pixel` of the image rows, (B, gh·gw, out_dim).
    pub fn forward_tokens(&self, z: &Tensor, grid: (i64, i64)) -> Tensor {
        let prefix = i64::from(self.cls_token.is_some());
        let x = self.hidden(z, grid);
        self.to_pixel.forward(&x.narrow(1, prefix, grid.0 * grid.1))
    }

    /// `z` → `to_pixel` of one pooled row per image, (B, out_dim): the class row after the
    /// final norm, or the mean of the image rows without one (the caption decoder, spec §4.5).
    pub fn forward_pooled(&self, z: &Tensor, grid: (i64, i64)) -> Tensor {
        let x = self.hidden(z, grid);
        let pooled = if self.cls_token.is_some() {
            x.select(1, 0)
        } else {
            x.narrow(1, 0, grid.0 * grid.1).mean_dim(1, false, x.kind())
        };
        self.to_pixel.forward(&pooled)
    }

    /// The whole sequence after the final norm.
    fn hidden(&self, z: &Tensor, grid: (i64, i64)) -> Tensor {
        let b = z.size()[0];
        let c = self.width;
        let (gh, gw) = grid;
        let n = gh * gw;
        let l = self.num_latent;
        let latents = self.post_quant_conv.forward(z) + &self.latent_pos_embed;
        let mut parts = Vec::with_capacity(3);
        if let Some(cls) = &self.cls_token {
            parts.push(cls.expand([b, 1, c], false));
        }
        parts.push(self.mask_token.expand([b, n, c], false));
        parts.push(latents);
        let mut x = Tensor::cat(&parts, 1);
        let prefix = i64::from(self.cls_token.is_some());
        let cond = z.silu();
        let ln = LayerNorm::affine_free(c, EPS);
        for (i, block) in self.blocks.iter().enumerate() {
            let rope = layer_phases(&self.freqs, i as i64, self.heads, grid, prefix);
            x = match block {
                DecBlock::Plain(block) => block.forward(&x, Some(&rope)),
                DecBlock::Movq { attn, mlp, ada } => {
                    let m = ada.forward(&cond).chunk(4, -1); // shift_attn, scale_attn, shift_mlp, scale_mlp
                    let a = ln.forward(&x);
                    let a_lat = a.narrow(1, a.size()[1] - l, l) * &m[1] + &m[0];
                    let x1 = &x + attn.forward(&with_latent_rows(&a, l, a_lat), Some(&rope));
                    let a = ln.forward(&x1);
                    let a_lat = a.narrow(1, a.size()[1] - l, l) * &m[3] + &m[2];
                    &x1 + mlp.forward(&with_latent_rows(&a, l, a_lat))
                }
            };
        }
        match &self.final_norm {
            FinalNorm::Plain(norm) => norm.forward(&x),
            FinalNorm::Movq(ada) => {
                let m = ada.forward(&cond).chunk(2, -1); // shift, scale
                let a = ln.forward(&x);
                let a_lat = a.narrow(1, a.size()[1] - l, l) * &m[1] + &m[0];
                with_latent_rows(&a, l, a_lat)
            }
        }
    }
}
