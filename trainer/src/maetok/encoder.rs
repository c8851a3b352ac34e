//! The MAETok encoder (spec §2.2): patch embedding, optional mask-token substitution
//! (training), `[cls | patches]` plus the learned APE, learned latent tokens with their 1-D
//! positions appended, LayerScale ViT blocks with mixed 2-D RoPE on the image rows only,
//! final LayerNorm; the last L tokens are the latent tokens (before `quant_conv`).

use maetok_teachers::nn::{load, save, Activation, Block, LayerNorm, PatchEmbed};
use maetok_teachers::weights::{WeightError, Weights};
use tch::Tensor;

use super::rope::layer_phases;
use super::AeConfig;

pub struct Encoder {
    patch_embed: PatchEmbed,
    cls_token: Option<Tensor>,
    pos_embed: Tensor,
    pub mask_token: Option<Tensor>,
    latent_tokens: Tensor,
    latent_pos_embed: Tensor,
    freqs: Tensor,
    blocks: Vec<Block>,
    norm: LayerNorm,
    pub width: i64,
    pub heads: i64,
    pub grid: (i64, i64),
    pub num_latent: i64,
    /// Tensors of the released layout that inference does not read (RoPE position buffers),
    /// kept so the model can be written back.
    extras: Vec<(String, Tensor)>,
}

const EPS: f64 = 1e-6;

impl Encoder {
    pub fn from_weights(w: &mut Weights, cfg: &AeConfig) -> Result<Self, WeightError> {
        let proj = w.take_any("encoder.model.patch_embed.proj.weight")?;
        let s = proj.size();
        let c = s[0];
        let patch_bias = w.take_opt("encoder.model.patch_embed.proj.bias", &[c])?;
        let cls_token = w.take_opt("encoder.model.cls_token", &[1, 1, c])?;
        let prefix = i64::from(cls_token.is_some());
        let pos_embed = w.take_any("encoder.model.pos_embed")?;
        let rows = pos_embed.size()[1] - prefix;
        let side = (rows as f64).sqrt().round() as i64;
        if side * side != rows {
            return Err(w.layout_error(format!(
                "`encoder.model.pos_embed` has {} rows: not {prefix} class row(s) plus a square grid",
                rows + prefix
            )));
        }
        let pos_embed =
            w.take_shaped(pos_embed, "encoder.model.pos_embed", &[1, prefix + rows, c])?;
        let latent_tokens = w.take_any("encoder.latent_tokens")?;
        let num_latent = latent_tokens.size()[1];
        let latent_tokens =
            w.take_shaped(latent_tokens, "encoder.latent_tokens", &[1, num_latent, c])?;
        let latent_pos_embed = w.take("encoder.latent_pos_embed", &[1, num_latent, c])?;
        let mask_token = w.take_opt("encoder.mask_token", &[1, 1, c])?;
        let depth = w.count_indexed("encoder.model.blocks.");
        let heads = AeConfig::heads(cfg.enc_num_heads, &cfg.encoder_model, c);
        let freqs = w.take("encoder.freqs", &[2, depth, c / 2])?;
        let extras = ["encoder.freqs_t_x", "encoder.freqs_t_y"]
            .into_iter()
            .filter_map(|k| w.take_any(k).ok().map(|t| (k.to_string(), t)))
            .collect();
        let blocks = (0..depth)
            .map(|i| {
                load::block(
                    w,
                    &format!("encoder.model.blocks.{i}"),
                    c,
                    heads,
                    Activation::Gelu,
                    EPS,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let norm = load::layer_norm(w, "encoder.model.norm", c, EPS)?;
        Ok(Self {
            patch_embed: PatchEmbed::new(proj, patch_bias),
            cls_token,
            pos_embed,
            mask_token,
            latent_tokens,
            latent_pos_embed,
            freqs,
            blocks,
            norm,
            width: c,
            heads,
            grid: (side, side),
            num_latent,
            extras,
        })
    }

    /// Every tensor under its released (`encoder.…`) name: the parameters, then the tensors the forward
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
        t(out, "encoder.latent_tokens", &self.latent_tokens);
        t(out, "encoder.latent_pos_embed", &self.latent_pos_embed);
        t(out, "encoder.freqs", &self.freqs);
        if let Some(m) = &self.mask_token {
            t(out, "encoder.mask_token", m);
        }
        if let Some(c) = &self.cls_token {
            t(out, "encoder.model.cls_token", c);
        }
        t(out, "encoder.model.pos_embed", &self.pos_embed);
        t(
            out,
            "encoder.model.patch_embed.proj.weight",
            &self.patch_embed.weight,
        );
        if let Some(b) = &self.patch_embed.bias {
            t(out, "encoder.model.patch_embed.proj.bias", b);
        }
        for (i, b) in self.blocks.iter().enumerate() {
            save::block(out, &format!("encoder.model.blocks.{i}"), b);
        }
        save::layer_norm(out, "encoder.model.norm", &self.norm);
    }

    /// Move/cast every tensor (e.g. to CUDA and bf16; RoPE still runs in fp32).
    pub fn to(&self, device: tch::Device, kind: tch::Kind) -> Self {
        let mv = |t: &Tensor| t.to_device(device).to_kind(kind);
        Self {
            patch_embed: self.patch_embed.to(device, kind),
            cls_token: self.cls_token.as_ref().map(mv),
            pos_embed: mv(&self.pos_embed),
            mask_token: self.mask_token.as_ref().map(mv),
            latent_tokens: mv(&self.latent_tokens),
            latent_pos_embed: mv(&self.latent_pos_embed),
            freqs: self.freqs.to_device(device),
            blocks: self.blocks.iter().map(|b| b.to(device, kind)).collect(),
            norm: self.norm.to(device, kind),
            width: self.width,
            heads: self.heads,
            grid: self.grid,
            num_latent: self.num_latent,
            extras: self
                .extras
                .iter()
                .map(|(k, t)| (k.clone(), t.to_device(device)))
                .collect(),
        }
    }

    pub fn patch_size(&self) -> i64 {
        self.patch_embed.patch_size().0
    }

    /// `img` (B, 3, H, W) in [-1, 1]; `mask` (B, N) true where a patch is replaced by the mask
    /// token (training). Returns the latent tokens after the final norm, (B, L, C).
    pub fn forward(&self, img: &Tensor, mask: Option<&Tensor>) -> Tensor {
        let b = img.size()[0];
        let c = self.width;
        let mut x = self.patch_embed.forward(img);
        let n = x.size()[1];
        if let (Some(mask), Some(token)) = (mask, &self.mask_token) {
            let m = mask.unsqueeze(-1).to_kind(x.kind());
            x = &x * (1.0 - &m) + token * m;
        }
        if let Some(cls) = &self.cls_token {
            x = Tensor::cat(&[cls.expand([b, 1, c], false), x], 1);
        }
        x += &self.pos_embed;
        let latents =
            (&self.latent_tokens + &self.latent_pos_embed).expand([b, self.num_latent, c], false);
        let mut x = Tensor::cat(&[x, latents], 1);
        let prefix = i64::from(self.cls_token.is_some());
        let (gh, gw) = self.grid;
        debug_assert_eq!(gh * gw, n);
        for (l, block) in self.blocks.iter().enumerate() {
            let rope = layer_phases(&self.freqs, l as i64, self.heads, self.grid, prefix);
            x = block.forward(&x, Some(&rope));
        }
        let x = self.norm.forward(&x);
        let s = x.size()[1];
        x.narrow(1, s - self.num_latent, self.num_latent)
    }
}
