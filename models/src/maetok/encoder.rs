//! The MAETok encoder (spec §2.2): patch embedding, optional mask-token substitution
//! (training), `[cls | patches]` plus the learned APE, learned latent tokens with their 1-D
//! positions appended, LayerScale ViT blocks with mixed 2-D RoPE on the image rows only,
//! final LayerNorm; the last L tokens are the latent tokens (before `quant_conv`).

use maetok_nn::rope::{grid_positions, init_mixed_freqs, layer_phases};
use maetok_nn::{Block, Init, LayerNorm, LinearInit, PatchEmbed, VarBuilder, WeightError};
use tch::Tensor;

use super::shape::EPS;
use super::MaetokShape;

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
}

impl Encoder {
    /// `vb` at `encoder`. Fresh tensors follow spec §2.5 (timm's ViT init; latent tokens,
    /// their positions and the mask token 0.02; mixed-RoPE random angles), drawn in the
    /// reference's order.
    pub fn new(vb: &VarBuilder, s: &MaetokShape) -> Result<Self, WeightError> {
        let t = &s.encoder;
        let (c, l, g) = (t.width, s.num_latent, s.grid);
        let latent_tokens = vb.param("latent_tokens", &[1, l, c], Init::Randn(0.02))?;
        let latent_pos_embed = vb.param("latent_pos_embed", &[1, l, c], Init::TruncNormal(0.02))?;
        let freqs = vb.param_f32_with("freqs", &[2, t.depth, c / 2], || {
            init_mixed_freqs(t.depth, t.heads, c / t.heads, s.rope_theta)
        })?;
        // The reference's RoPE position buffers; the forward computes positions itself.
        vb.unused("freqs_t_x", Some(|| grid_positions(g).0))?;
        vb.unused("freqs_t_y", Some(|| grid_positions(g).1))?;
        let mask_token = s
            .mask_token
            .then(|| vb.param("mask_token", &[1, 1, c], Init::Randn(0.02)))
            .transpose()?;
        let m = vb.pp("model");
        let cls_token = t
            .cls_token
            .then(|| m.param("cls_token", &[1, 1, c], Init::Randn(1e-6)))
            .transpose()?;
        let rows = i64::from(t.cls_token) + g * g;
        let pos_embed = m.param("pos_embed", &[1, rows, c], Init::TruncNormal(0.02))?;
        let patch_embed = PatchEmbed::new(&m.pp("patch_embed"), c, s.patch, true)?;
        let block = t.block(s.layer_scale_init);
        let blocks = (0..t.depth)
            .map(|i| Block::new(&m.pp("blocks").pp(i), &block, LinearInit::Timm))
            .collect::<Result<Vec<_>, _>>()?;
        let norm = LayerNorm::new(&m.pp("norm"), c, EPS)?;
        Ok(Self {
            patch_embed,
            cls_token,
            pos_embed,
            mask_token,
            latent_tokens,
            latent_pos_embed,
            freqs,
            blocks,
            norm,
            width: c,
            heads: t.heads,
            grid: (g, g),
            num_latent: l,
        })
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
