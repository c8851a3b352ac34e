//! The MAETok pixel decoder (spec §2.4): one shared mask token for every image row (told
//! apart only by RoPE, no absolute positions), the projected latents with their 1-D
//! positions appended, and either MoVQ blocks (affine-free LayerNorms whose latent rows are
//! modulated `x · scale + shift` from the raw latent, no LayerScale) or plain timm blocks
//! (optionally with a class token), chosen from the checkpoint's keys (spec §2.7). The image
//! rows go through `to_pixel` and are unpatchified.

use maetok_teachers::nn::{load, save, Activation, Attention, Block, LayerNorm, Linear, Mlp};
use maetok_teachers::weights::{WeightError, Weights};
use tch::Tensor;

use super::rope::layer_phases;
use super::AeConfig;

const EPS: f64 = 1e-6;

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
    /// Released-layout tensors the decoder never reads (timm's `pos_embed` / `patch_embed`,
    /// RoPE position buffers), kept so the model can be written back.
    extras: Vec<(String, Tensor)>,
}

/// `x` with its last `l` rows replaced by `rows`.
fn with_latent_rows(x: &Tensor, l: i64, rows: Tensor) -> Tensor {
    let s = x.size()[1];
    Tensor::cat(&[x.narrow(1, 0, s - l), rows], 1)
}

impl Decoder {
    /// The pixel decoder, heads from the config (spec §2.4).
    pub fn from_weights(
        w: &mut Weights,
        cfg: &AeConfig,
        latent_dim: i64,
    ) -> Result<Self, WeightError> {
        let dec = Self::from_weights_named(w, DecoderNames::pixel(), latent_dim, |c| {
            AeConfig::heads(cfg.dec_num_heads, &cfg.decoder_model, c)
        })?;
        let patch = dec.patch();
        if patch * patch * 3 != dec.out_dim {
            return Err(w.layout_error(format!(
                "`decoder.to_pixel.model.weight` has {} outputs, not 3·p² for a patch size p",
                dec.out_dim
            )));
        }
        Ok(dec)
    }

    /// A decoder stored under `names`; `heads(width)` gives its head count (not readable
    /// from the tensor shapes).
    pub fn from_weights_named(
        w: &mut Weights,
        names: DecoderNames,
        latent_dim: i64,
        heads: impl Fn(i64) -> i64,
    ) -> Result<Self, WeightError> {
        let pre = names.prefix.clone();
        let mask_token = w.take_any(&format!("{pre}.mask_token"))?;
        let c = *mask_token.size().last().unwrap_or(&0);
        let mask_token = w.take_shaped(mask_token, &format!("{pre}.mask_token"), &[1, 1, c])?;
        let post_quant_conv = load::linear(w, &names.post_quant_conv, c, latent_dim)?;
        let latent_pos_embed = w.take_any(&format!("{pre}.latent_pos_embed"))?;
        let num_latent = latent_pos_embed.size()[1];
        let latent_pos_embed = w.take_shaped(
            latent_pos_embed,
            &format!("{pre}.latent_pos_embed"),
            &[1, num_latent, c],
        )?;
        let cls_token = w.take_opt(&format!("{pre}.model.cls_token"), &[1, 1, c])?;
        let depth = w.count_indexed(&format!("{pre}.model.blocks."));
        let heads = heads(c);
        let freqs = w.take(&format!("{pre}.freqs"), &[2, depth, c / 2])?;
        // Built by timm but never used by the decoder (spec §2.4, §4.1).
        let extras = [
            "freqs_t_x",
            "freqs_t_y",
            "model.pos_embed",
            "model.patch_embed.proj.weight",
            "model.patch_embed.proj.bias",
            "model.head.weight",
            "model.head.bias",
        ]
        .into_iter()
        .map(|k| format!("{pre}.{k}"))
        .filter_map(|k| w.take_any(&k).ok().map(|t| (k, t)))
        .collect();
        let movq = w.contains(&format!("{pre}.model.blocks.0.adaLN_modulation.1.weight"));
        let kind = if movq {
            DecoderKind::Movq
        } else {
            DecoderKind::Plain
        };
        let mut blocks = Vec::with_capacity(depth as usize);
        for i in 0..depth {
            let p = format!("{pre}.model.blocks.{i}");
            blocks.push(if movq {
                DecBlock::Movq {
                    attn: load::attention(w, &p, c, heads)?,
                    mlp: load::mlp(w, &p, c, Activation::Gelu)?,
                    ada: load::linear(w, &format!("{p}.adaLN_modulation.1"), 4 * c, latent_dim)?,
                }
            } else {
                DecBlock::Plain(load::block(w, &p, c, heads, Activation::Gelu, EPS)?)
            });
        }
        let final_norm = if movq {
            FinalNorm::Movq(load::linear(
                w,
                &format!("{pre}.model.norm.adaLN_modulation.1"),
                2 * c,
                latent_dim,
            )?)
        } else {
            FinalNorm::Plain(load::layer_norm(w, &format!("{pre}.model.norm"), c, EPS)?)
        };
        let out_dim = w
            .shape(&format!("{}.weight", names.to_pixel))
            .map_or(0, |s| s[0]);
        let to_pixel = load::linear(w, &names.to_pixel, out_dim, c)?;
        Ok(Self {
            names,
            kind,
            post_quant_conv,
            mask_token,
            cls_token,
            latent_pos_embed,
            freqs,
            blocks,
            final_norm,
            to_pixel,
            width: c,
            heads,
            out_dim,
            num_latent,
            extras,
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

    /// Every tensor (`post_quant_conv` and `to_pixel` included) under its released name: the parameters, then the tensors the forward
    /// never reads (see `extras`).
    pub fn state_dict(&self, out: &mut save::Named) {
        self.params(out);
        save::extend(out, &self.extras);
    }

    /// The tensors the forward reads (what training updates), under their released names.
    pub fn params(&self, out: &mut save::Named) {
        let t = |out: &mut save::Named, k: &str, v: &Tensor| {
            out.push((k.to_string(), v.shallow_clone()))
        };
        let pre = &self.names.prefix;
        save::linear(out, &self.names.post_quant_conv, &self.post_quant_conv);
        t(out, &format!("{pre}.mask_token"), &self.mask_token);
        t(
            out,
            &format!("{pre}.latent_pos_embed"),
            &self.latent_pos_embed,
        );
        t(out, &format!("{pre}.freqs"), &self.freqs);
        if let Some(c) = &self.cls_token {
            t(out, &format!("{pre}.model.cls_token"), c);
        }
        for (i, b) in self.blocks.iter().enumerate() {
            let p = format!("{pre}.model.blocks.{i}");
            match b {
                DecBlock::Plain(b) => save::block(out, &p, b),
                DecBlock::Movq { attn, mlp, ada } => {
                    save::attention(out, &p, attn);
                    save::mlp(out, &p, mlp);
                    save::linear(out, &format!("{p}.adaLN_modulation.1"), ada);
                }
            }
        }
        match &self.final_norm {
            FinalNorm::Plain(n) => save::layer_norm(out, &format!("{pre}.model.norm"), n),
            FinalNorm::Movq(ada) => {
                save::linear(out, &format!("{pre}.model.norm.adaLN_modulation.1"), ada)
            }
        }
        save::linear(out, &self.names.to_pixel, &self.to_pixel);
    }

    /// Move/cast every tensor (e.g. to CUDA and bf16; RoPE still runs in fp32).
    pub fn to(&self, device: tch::Device, kind: tch::Kind) -> Self {
        let mv = |t: &Tensor| t.to_device(device).to_kind(kind);
        Self {
            names: self.names.clone(),
            kind: self.kind,
            post_quant_conv: self.post_quant_conv.to(device, kind),
            mask_token: mv(&self.mask_token),
            cls_token: self.cls_token.as_ref().map(mv),
            latent_pos_embed: mv(&self.latent_pos_embed),
            freqs: self.freqs.to_device(device),
            blocks: self
                .blocks
                .iter()
                .map(|b| match b {
                    DecBlock::Plain(b) => DecBlock::Plain(b.to(device, kind)),
                    DecBlock::Movq { attn, mlp, ada } => DecBlock::Movq {
                        attn: attn.to(device, kind),
                        mlp: mlp.to(device, kind),
                        ada: ada.to(device, kind),
                    },
                })
                .collect(),
            final_norm: match &self.final_norm {
                FinalNorm::Plain(n) => FinalNorm::Plain(n.to(device, kind)),
                FinalNorm::Movq(l) => FinalNorm::Movq(l.to(device, kind)),
            },
            to_pixel: self.to_pixel.to(device, kind),
            width: self.width,
            heads: self.heads,
            out_dim: self.out_dim,
            num_latent: self.num_latent,
            extras: self
                .extras
                .iter()
                .map(|(k, t)| (k.clone(), t.to_device(device)))
                .collect(),
        }
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
