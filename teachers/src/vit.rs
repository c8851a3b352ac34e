//! A plain Vision Transformer in timm's layout and semantics (`VisionTransformer.
//! forward_features`): patch embedding, optional class and register tokens, learned absolute
//! positions (with or without rows for the prefix tokens: timm's `no_embed_class`), optional
//! pre-norm (CLIP's `ln_pre`), pre-norm blocks, final LayerNorm. Every teacher family is
//! converted to this layout on load (see [`crate::layout`]), so there is one forward to
//! check against the reference.
//!
//! The architecture is read off the weights (width, depth, MLP width, SwiGLU, LayerScale,
//! prefix tokens, native patch and grid); only what weights cannot tell (heads, activation,
//! LayerNorm eps) comes from [`VitHyper`].

use tch::{Device, Kind, Tensor};

use crate::nn::resample::{resample_patch_kernel, resample_pos_grid};
use crate::nn::{load, Activation, AttentionImpl, Block, LayerNorm, PatchEmbed};
use crate::weights::{WeightError, Weights};

/// What the weights do not say.
#[derive(Debug, Clone, PartialEq)]
pub struct VitHyper {
    pub num_heads: i64,
    /// Activation of the (non-gated) MLPs; a packed SwiGLU MLP is detected from the shapes.
    pub act: Activation,
    pub eps: f64,
}

/// The architecture as loaded, for manifests and logs.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VitShape {
    pub width: i64,
    pub depth: i64,
    pub num_heads: i64,
    pub mlp_hidden: i64,
    pub act: Activation,
    pub eps: f64,
    pub layer_scale: bool,
    pub class_token: bool,
    pub reg_tokens: i64,
    pub no_embed_class: bool,
    pub pre_norm: bool,
    pub patch_bias: bool,
    pub native_patch: (i64, i64),
    pub native_grid: (i64, i64),
    pub patch: (i64, i64),
    pub grid: (i64, i64),
}

#[derive(Debug)]
pub struct VisionTransformer {
    pub shape: VitShape,
    patch_embed: PatchEmbed,
    cls_token: Option<Tensor>,
    reg_token: Option<Tensor>,
    pos_embed: Tensor,
    norm_pre: Option<LayerNorm>,
    blocks: Vec<Block>,
    norm: LayerNorm,
}

fn is_square(n: i64) -> Option<i64> {
    let r = (n as f64).sqrt().round() as i64;
    (r * r == n).then_some(r)
}

impl VisionTransformer {
    /// Build from timm-named weights, resampled to run on `image` (h, w) pixels with
    /// `patch` × `patch` patches.
    pub fn from_weights(
        w: &mut Weights,
        hyper: &VitHyper,
        image: (i64, i64),
        patch: i64,
    ) -> Result<Self, WeightError> {
        let proj = w.take_any("patch_embed.proj.weight")?;
        let ps = proj.size();
        if ps.len() != 4 || ps[1] != 3 {
            return Err(WeightError::Shape {
                path: w.path().to_path_buf(),
                key: w.origin_of("patch_embed.proj.weight"),
                found: ps,
                expected: vec![-1, 3, -1, -1],
                hint: w.hint().to_string(),
            });
        }
        let c = ps[0];
        let native_patch = (ps[2], ps[3]);
        if c % hyper.num_heads != 0 {
            return Err(w.layout_error(format!(
                "width {c} is not divisible by {} heads; give the model's config.json with \
                 `--model-config`",
                hyper.num_heads
            )));
        }
        let patch_bias = w.take_opt("patch_embed.proj.bias", &[c])?;
        let cls_token = w.take_opt("cls_token", &[1, 1, c])?;
        let reg_token = match w.shape("reg_token") {
            Some(s) if s.len() == 3 => Some(w.take("reg_token", &[1, s[1], c])?),
            Some(_) => Some(w.take("reg_token", &[1, -1, c])?),
            None => None,
        };
        let reg_tokens = reg_token.as_ref().map_or(0, |t| t.size()[1]);
        let prefix = i64::from(cls_token.is_some()) + reg_tokens;
        let pos = w.take_any("pos_embed")?;
        let p = pos.size();
        if p.len() != 3 || p[0] != 1 || p[2] != c {
            return Err(WeightError::Shape {
                path: w.path().to_path_buf(),
                key: w.origin_of("pos_embed"),
                found: p,
                expected: vec![1, -1, c],
                hint: w.hint().to_string(),
            });
        }
        // timm's `no_embed_class`: the table has rows for the patches only.
        let (no_embed_class, side) = match (is_square(p[1] - prefix), is_square(p[1])) {
            (Some(s), _) => (false, s),
            (None, Some(s)) if prefix > 0 => (true, s),
            _ => {
                return Err(w.layout_error(format!(
                    "`{}` has {} rows, which is neither a square grid nor {prefix} prefix rows \
                     plus one",
                    w.origin_of("pos_embed"),
                    p[1]
                )))
            }
        };
        let native_grid = (side, side);
        if image.0 % patch != 0 || image.1 % patch != 0 {
            return Err(w.layout_error(format!(
                "image size {}x{} is not a multiple of the patch size {patch}",
                image.0, image.1
            )));
        }
        let grid = (image.0 / patch, image.1 / patch);
        let pos_prefix = if no_embed_class { 0 } else { prefix };
        let pos_embed = resample_pos_grid(&pos, pos_prefix, native_grid, grid);
        let proj = resample_patch_kernel(&proj, (patch, patch));

        let norm_pre = if w.contains("norm_pre.weight") {
            Some(load::layer_norm(w, "norm_pre", c, hyper.eps)?)
        } else {
            None
        };
        let depth = w.count_indexed("blocks.");
        if depth == 0 {
            return Err(w.missing("blocks.0.attn.qkv.weight", Some(&[3 * c, c])));
        }
        let blocks = (0..depth)
            .map(|i| {
                load::block(
                    w,
                    &format!("blocks.{i}"),
                    c,
                    hyper.num_heads,
                    hyper.act,
                    hyper.eps,
                )
            })
            .collect::<Result<Vec<Block>, _>>()?;
        let (mlp_hidden, act) = (blocks[0].mlp.fc1.out_features(), blocks[0].mlp.act);
        let layer_scale = blocks[0].ls1.is_some();
        let norm = load::layer_norm(w, "norm", c, hyper.eps)?;
        let shape = VitShape {
            width: c,
            depth,
            num_heads: hyper.num_heads,
            mlp_hidden,
            act,
            eps: hyper.eps,
            layer_scale,
            class_token: cls_token.is_some(),
            reg_tokens,
            no_embed_class,
            pre_norm: norm_pre.is_some(),
            patch_bias: patch_bias.is_some(),
            native_patch,
            native_grid,
            patch: (patch, patch),
            grid,
        };
        Ok(Self {
            shape,
            patch_embed: PatchEmbed::new(proj, patch_bias),
            cls_token,
            reg_token,
            pos_embed,
            norm_pre,
            blocks,
            norm,
        })
    }

    pub fn num_prefix_tokens(&self) -> i64 {
        i64::from(self.shape.class_token) + self.shape.reg_tokens
    }

    /// Switch the attention kernel (explicit or SDPA) of every block.
    pub fn set_attention(&mut self, imp: AttentionImpl) {
        for b in &mut self.blocks {
            b.attn.imp = imp;
        }
    }

    /// Move/cast all weights.
    pub fn to(&self, device: Device, kind: Kind) -> Self {
        let mv = |t: &Option<Tensor>| t.as_ref().map(|t| t.to_device(device).to_kind(kind));
        Self {
            shape: self.shape.clone(),
            patch_embed: self.patch_embed.to(device, kind),
            cls_token: mv(&self.cls_token),
            reg_token: mv(&self.reg_token),
            pos_embed: self.pos_embed.to_device(device).to_kind(kind),
            norm_pre: self.norm_pre.as_ref().map(|n| n.to(device, kind)),
            blocks: self.blocks.iter().map(|b| b.to(device, kind)).collect(),
            norm: self.norm.to(device, kind),
        }
    }

    /// timm `forward_features`: (B, 3, H, W) normalised pixels -> (B, prefix + tokens, C).
    pub fn forward_features(&self, x: &Tensor) -> Tensor {
        let b = x.size()[0];
        let c = self.shape.width;
        let mut x = self.patch_embed.forward(x);
        if self.shape.no_embed_class {
            x += &self.pos_embed;
        }
        let mut parts = Vec::with_capacity(3);
        if let Some(cls) = &self.cls_token {
            parts.push(cls.expand([b, 1, c], false));
        }
        if let Some(reg) = &self.reg_token {
            parts.push(reg.expand([b, self.shape.reg_tokens, c], false));
        }
        if !parts.is_empty() {
            parts.push(x);
            x = Tensor::cat(&parts, 1);
        }
        if !self.shape.no_embed_class {
            x += &self.pos_embed;
        }
        if let Some(n) = &self.norm_pre {
            x = n.forward(&x);
        }
        for block in &self.blocks {
            x = block.forward(&x, None);
        }
        self.norm.forward(&x)
    }

    /// Patch tokens only (prefix tokens dropped): (B, gh·gw, C).
    pub fn patch_tokens(&self, x: &Tensor) -> Tensor {
        let y = self.forward_features(x);
        let p = self.num_prefix_tokens();
        let n = y.size()[1];
        y.narrow(1, p, n - p)
    }
}
