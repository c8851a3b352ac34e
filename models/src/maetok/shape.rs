//! The architecture of a MAETok tokenizer: the one description its constructors build from.
//! It comes either from a checkpoint, read off the tensor keys and shapes (spec §2.7; only
//! what shapes cannot tell, the head counts and RoPE's θ, comes from `config.json`), or
//! from a training config's `[model]` section (`maetok-trainer`), and is written back as
//! the official `config.json` ([`super::AeConfig::from_shape`]).

use maetok_nn::{Activation, BlockShape, WeightError, Weights};

use super::decoder::DecoderNames;
use super::AeConfig;

/// One transformer tower: the encoder, the pixel decoder or an auxiliary decoder.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct TowerShape {
    pub width: i64,
    pub depth: i64,
    pub heads: i64,
    /// MLP width.
    pub hidden: i64,
    pub cls_token: bool,
    /// LayerScale in the (plain) blocks.
    pub layer_scale: bool,
}

/// LayerNorm eps of every MAETok tower (timm's `partial(nn.LayerNorm, eps=1e-6)`).
pub const EPS: f64 = 1e-6;

impl TowerShape {
    /// The shape of this tower's (plain) blocks; LayerScale starts at `layer_scale_init`.
    pub fn block(&self, layer_scale_init: f64) -> BlockShape {
        BlockShape {
            width: self.width,
            heads: self.heads,
            hidden: self.hidden,
            act: Activation::Gelu,
            eps: EPS,
            layer_scale: self.layer_scale.then_some(layer_scale_init),
        }
    }
}

/// A decoder tower with its head.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct DecoderShape {
    pub tower: TowerShape,
    /// MoVQ blocks (affine-free norms modulated by the latent, spec §2.4) or plain timm
    /// blocks.
    pub movq: bool,
    /// `to_pixel` outputs per image token (3·p² for the pixel decoder).
    pub out_dim: i64,
}

/// The whole tokenizer.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct MaetokShape {
    pub patch: i64,
    /// Patches per side.
    pub grid: i64,
    pub num_latent: i64,
    pub latent_dim: i64,
    pub encoder: TowerShape,
    /// `encoder.mask_token` (models trained with masking have it).
    pub mask_token: bool,
    pub decoder: DecoderShape,
    pub rope_theta: f64,
    /// LayerScale γ at initialisation (timm's `init_values`: 1e-5 in the reference).
    pub layer_scale_init: f64,
}

impl DecoderShape {
    /// The auxiliary decoders' tower (spec §4.1, `vit_tinytiny_patch14_dinov2_movq2`): 192
    /// wide, 3 MoVQ layers, 3 heads, MLP 768, with a class token.
    pub fn aux(out_dim: i64) -> Self {
        Self {
            tower: TowerShape {
                width: 192,
                depth: 3,
                heads: 3,
                hidden: 768,
                cls_token: true,
                layer_scale: false,
            },
            movq: true,
            out_dim,
        }
    }

    /// The decoder stored under `names` in `w`, with `heads` heads (not readable from the
    /// shapes).
    pub fn read(w: &Weights, names: &DecoderNames, heads: i64) -> Result<Self, WeightError> {
        let pre = &names.prefix;
        let width = last_dim(w, &format!("{pre}.mask_token"))?;
        let blocks = format!("{pre}.model.blocks.");
        let depth = w.count_indexed(&blocks);
        let hidden = dim(w, &format!("{blocks}0.mlp.fc1.weight"), 0)?;
        let to_pixel = format!("{}.weight", names.to_pixel);
        Ok(Self {
            tower: TowerShape {
                width,
                depth,
                heads,
                hidden,
                cls_token: w.contains(&format!("{pre}.model.cls_token")),
                layer_scale: w.contains(&format!("{blocks}0.ls1.gamma")),
            },
            movq: w.contains(&format!("{blocks}0.adaLN_modulation.1.weight")),
            out_dim: dim(w, &to_pixel, 0)?,
        })
    }
}

/// Size `i` of tensor `key`, or the missing-key error.
fn dim(w: &Weights, key: &str, i: usize) -> Result<i64, WeightError> {
    w.shape(key)
        .and_then(|s| s.get(i).copied())
        .ok_or_else(|| w.missing(key, None))
}

fn last_dim(w: &Weights, key: &str) -> Result<i64, WeightError> {
    w.shape(key)
        .and_then(|s| s.last().copied())
        .ok_or_else(|| w.missing(key, None))
}

impl MaetokShape {
    /// MAETok-B/128 (spec §2.1) at `image_size` pixels.
    pub fn maetok_b_128(image_size: i64) -> Self {
        let tower = TowerShape {
            width: 768,
            depth: 12,
            heads: 12,
            hidden: 3072,
            cls_token: true,
            layer_scale: true,
        };
        Self {
            patch: 16,
            grid: image_size / 16,
            num_latent: 128,
            latent_dim: 32,
            encoder: tower,
            mask_token: true,
            decoder: DecoderShape {
                tower: TowerShape {
                    cls_token: false,
                    layer_scale: false,
                    ..tower
                },
                movq: true,
                out_dim: 3 * 16 * 16,
            },
            rope_theta: 10.0,
            layer_scale_init: 1e-5,
        }
    }

    pub fn image_size(&self) -> i64 {
        self.grid * self.patch
    }

    /// The architecture of an `AEModel` state dict (spec §2.7); `cfg` gives the heads and θ.
    pub fn read(w: &Weights, cfg: &AeConfig) -> Result<Self, WeightError> {
        let proj = "encoder.model.patch_embed.proj.weight";
        let ps = w.shape(proj).ok_or_else(|| w.missing(proj, None))?;
        if ps.len() != 4 {
            return Err(w.layout_error(format!("`{proj}` is not a (C, 3, p, p) kernel")));
        }
        let (width, patch) = (ps[0], ps[2]);
        let cls_token = w.contains("encoder.model.cls_token");
        let prefix = i64::from(cls_token);
        let rows = dim(w, "encoder.model.pos_embed", 1)? - prefix;
        let side = (rows as f64).sqrt().round() as i64;
        if side * side != rows {
            return Err(w.layout_error(format!(
                "`encoder.model.pos_embed` has {} rows: not {prefix} class row(s) plus a square grid",
                rows + prefix
            )));
        }
        let blocks = "encoder.model.blocks.";
        let encoder = TowerShape {
            width,
            depth: w.count_indexed(blocks),
            heads: AeConfig::heads(cfg.enc_num_heads, &cfg.encoder_model, width),
            hidden: dim(w, &format!("{blocks}0.mlp.fc1.weight"), 0)?,
            cls_token,
            layer_scale: w.contains(&format!("{blocks}0.ls1.gamma")),
        };
        let latent_dim = w
            .shape("quant_conv.weight")
            .map_or(cfg.codebook_embed_dim, |s| s[0]);
        let names = DecoderNames::pixel();
        let dec_width = last_dim(w, &format!("{}.mask_token", names.prefix))?;
        let dec_heads = AeConfig::heads(cfg.dec_num_heads, &cfg.decoder_model, dec_width);
        let decoder = DecoderShape::read(w, &names, dec_heads)?;
        let p = ((decoder.out_dim / 3) as f64).sqrt().round() as i64;
        if 3 * p * p != decoder.out_dim {
            return Err(w.layout_error(format!(
                "`decoder.to_pixel.model.weight` has {} outputs, not 3·p² for a patch size p",
                decoder.out_dim
            )));
        }
        for (what, t) in [
            ("encoder (`enc_num_heads`)", &encoder),
            ("decoder (`dec_num_heads`)", &decoder.tower),
        ] {
            if t.heads < 1 || t.width % t.heads != 0 || (t.width / t.heads) % 4 != 0 {
                return Err(w.layout_error(format!(
                    "config.json gives the {what} {} heads, which do not split its width {} \
                     into heads whose width is a multiple of 4 (2-D RoPE)",
                    t.heads, t.width
                )));
            }
        }
        if side * patch != cfg.image_size {
            return Err(w.layout_error(format!(
                "config.json says `image_size` = {}, but the weights' grid of {side}×{side} \
                 patches of {patch} px serves {} px images",
                cfg.image_size,
                side * patch
            )));
        }
        Ok(Self {
            patch,
            grid: side,
            num_latent: dim(w, "encoder.latent_tokens", 1)?,
            latent_dim,
            encoder,
            mask_token: w.contains("encoder.mask_token"),
            decoder,
            rope_theta: cfg.rope_theta,
            layer_scale_init: 1e-5,
        })
    }
}
