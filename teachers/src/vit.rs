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

use maetok_nn::resample::{resample_patch_kernel, resample_pos_grid};
use maetok_nn::vars::{self, VarBuilder, Vars};
use maetok_nn::{
    Activation, AttentionImpl, Block, BlockShape, Init, LayerNorm, LinearInit, PatchEmbed,
    WeightError, Weights,
};

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
    vars: Vars,
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

impl VitShape {
    /// The architecture of timm-named weights `w`, run on `image` (h, w) pixels with
    /// `patch` × `patch` patches.
    pub fn read(
        w: &Weights,
        hyper: &VitHyper,
        image: (i64, i64),
        patch: i64,
    ) -> Result<Self, WeightError> {
        let shape_err = |key: &str, found: Vec<i64>, expected: Vec<i64>| WeightError::Shape {
            path: w.path().to_path_buf(),
            key: w.origin_of(key),
            found,
            expected,
            hint: w.hint().to_string(),
        };
        let ps = w
            .shape("patch_embed.proj.weight")
            .ok_or_else(|| w.missing("patch_embed.proj.weight", None))?;
        if ps.len() != 4 || ps[1] != 3 {
            return Err(shape_err(
                "patch_embed.proj.weight",
                ps,
                vec![-1, 3, -1, -1],
            ));
        }
        let c = ps[0];
        if c % hyper.num_heads != 0 {
            return Err(w.layout_error(format!(
                "width {c} is not divisible by {} heads; give the model's config.json with \
                 `--model-config`",
                hyper.num_heads
            )));
        }
        let class_token = w.contains("cls_token");
        // A `reg_token` of the wrong rank is refused by the shape check at load.
        let reg_tokens = match w.shape("reg_token") {
            Some(s) if s.len() == 3 => s[1],
            Some(_) => -1,
            None => 0,
        };
        let prefix = i64::from(class_token) + reg_tokens.max(0);
        let p = w
            .shape("pos_embed")
            .ok_or_else(|| w.missing("pos_embed", None))?;
        if p.len() != 3 || p[0] != 1 || p[2] != c {
            return Err(shape_err("pos_embed", p, vec![1, -1, c]));
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
        if image.0 % patch != 0 || image.1 % patch != 0 {
            return Err(w.layout_error(format!(
                "image size {}x{} is not a multiple of the patch size {patch}",
                image.0, image.1
            )));
        }
        let depth = w.count_indexed("blocks.");
        let fc1 = "blocks.0.mlp.fc1.weight";
        let mlp_hidden = match w.shape(fc1) {
            Some(s) if s.len() == 2 && depth > 0 => s[0],
            _ if depth == 0 => return Err(w.missing("blocks.0.attn.qkv.weight", Some(&[3 * c, c]))),
            _ => return Err(w.missing(fc1, Some(&[-1, c]))),
        };
        // A packed SwiGLU is told by its shapes: fc2 reads half of what fc1 writes.
        let fc2_in = w
            .shape("blocks.0.mlp.fc2.weight")
            .map_or(mlp_hidden, |s| s[s.len() - 1]);
        let act = if fc2_in * 2 == mlp_hidden {
            Activation::SwiGlu
        } else {
            hyper.act
        };
        Ok(Self {
            width: c,
            depth,
            num_heads: hyper.num_heads,
            mlp_hidden,
            act,
            eps: hyper.eps,
            layer_scale: w.contains("blocks.0.ls1.gamma"),
            class_token,
            reg_tokens,
            no_embed_class,
            pre_norm: w.contains("norm_pre.weight"),
            patch_bias: w.contains("patch_embed.proj.bias"),
            native_patch: (ps[2], ps[3]),
            native_grid: (side, side),
            patch: (patch, patch),
            grid: (image.0 / patch, image.1 / patch),
        })
    }

    fn block(&self) -> BlockShape {
        BlockShape {
            width: self.width,
            heads: self.num_heads,
            hidden: self.mlp_hidden,
            act: self.act,
            eps: self.eps,
            // Loading reads γ from the file; the value is only an initialiser's.
            layer_scale: self.layer_scale.then_some(1.0),
        }
    }
}

impl VisionTransformer {
    /// Build from timm-named weights, resampled to run on `image` (h, w) pixels with
    /// `patch` × `patch` patches; also returns the keys it did not use.
    pub fn load(
        w: Weights,
        hyper: &VitHyper,
        image: (i64, i64),
        patch: i64,
    ) -> Result<(Self, Vec<String>), WeightError> {
        let shape = VitShape::read(&w, hyper, image, patch)?;
        let (mut vit, vars, left) = vars::load(w, |vb| Self::build(&vb, shape))?;
        vit.vars = vars;
        Ok((vit, left))
    }

    fn build(vb: &VarBuilder, shape: VitShape) -> Result<Self, WeightError> {
        let c = shape.width;
        let s = &shape;
        let proj = resample_patch_kernel(&vb.take_raw("patch_embed.proj.weight")?, s.patch);
        let patch_embed = PatchEmbed::from_tensors(
            vb.derived("patch_embed.proj.weight", proj),
            s.patch_bias
                .then(|| vb.param("patch_embed.proj.bias", &[c], Init::Zeros))
                .transpose()?,
        );
        let cls_token = s
            .class_token
            .then(|| vb.param("cls_token", &[1, 1, c], Init::Zeros))
            .transpose()?;
        let reg_token = (s.reg_tokens != 0)
            .then(|| vb.param("reg_token", &[1, s.reg_tokens, c], Init::Zeros))
            .transpose()?;
        let prefix = i64::from(s.class_token) + s.reg_tokens;
        let pos_prefix = if s.no_embed_class { 0 } else { prefix };
        let pos = resample_pos_grid(
            &vb.take_raw("pos_embed")?,
            pos_prefix,
            s.native_grid,
            s.grid,
        );
        let pos_embed = vb.derived("pos_embed", pos);
        let norm_pre = s
            .pre_norm
            .then(|| LayerNorm::new(&vb.pp("norm_pre"), c, s.eps))
            .transpose()?;
        let blocks = (0..s.depth)
            .map(|i| Block::new(&vb.pp("blocks").pp(i), &s.block(), LinearInit::Timm))
            .collect::<Result<Vec<Block>, _>>()?;
        let norm = LayerNorm::new(&vb.pp("norm"), c, s.eps)?;
        Ok(Self {
            shape,
            vars: Vars::default(),
            patch_embed,
            cls_token,
            reg_token,
            pos_embed,
            norm_pre,
            blocks,
            norm,
        })
    }

    /// Every tensor, under the name it was read by.
    pub fn vars(&self) -> &Vars {
        &self.vars
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
    pub fn to(&mut self, device: Device, kind: Kind) {
        self.vars.to(device, kind);
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
