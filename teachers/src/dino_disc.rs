//! The frozen backbone of MAETok's DINO discriminator (spec §5.2, reference
//! `discriminator_dino.py` `DinoDisc`): a DINO ViT-S/16 (GELU-tanh MLPs, key bias of qkv
//! zeroed, no final norm) read at the patch embedding and after blocks 2, 5, 8, 11 (patch
//! tokens + cls token, as (B, C, L)). The trainable heads scoring each reading are the
//! trainer's (`maetok_trainer::losses::disc`).
//!
//! Input in [-1, 1] is ImageNet-normalised, then brought to the backbone's size: when both
//! sides are larger, a random crop with probability ½, else an area (shrinking) or bicubic
//! (growing) resize. The backbone's size is read from its position table (224 for the real
//! ViT-S/16), so tiny test backbones work at their own size.
//!
//! Weights: timm's `vit_small_patch16_224.dino` `model.safetensors` (same tensors as
//! `dino_deitsmall16_pretrain.pth`).

use std::path::Path;

use maetok_nn::rng::SplitMix;
use maetok_nn::vars::{self, VarBuilder, Vars};
use maetok_nn::{
    Activation, Block, BlockShape, Init, LinearInit, PatchEmbed, WeightError, Weights,
};
use tch::{Kind, Tensor};

const HINT: &str =
    "the discriminator backbone: timm `vit_small_patch16_224.dino` model.safetensors";
const EPS: f64 = 1e-6;
const KEY_DEPTHS: [i64; 4] = [2, 5, 8, 11];

/// Frozen DINO ViT backbone.
pub struct DinoBackbone {
    vars: Vars,
    patch_embed: PatchEmbed,
    cls_token: Tensor,
    pos_embed: Tensor,
    blocks: Vec<Block>,
    pub width: i64,
    /// Input side the position table is for (224 for ViT-S/16).
    pub img_size: i64,
    key_depths: Vec<i64>,
    x_scale: Tensor,
    x_shift: Tensor,
}

/// What the backbone's weights say about it.
struct Shape {
    width: i64,
    patch: i64,
    side: i64,
    depth: i64,
    hidden: i64,
}

impl DinoBackbone {
    pub fn load(path: &Path, heads: i64) -> Result<Self, WeightError> {
        let mut w = Weights::load(path, HINT)?;
        let proj = "patch_embed.proj.weight";
        let ps = w.shape(proj).ok_or_else(|| w.missing(proj, None))?;
        let rows = w.shape("pos_embed").map_or(0, |s| s[1]) - 1;
        let side = (rows as f64).sqrt().round() as i64;
        if side * side != rows || rows <= 0 {
            return Err(w.layout_error("`pos_embed` is not a class row plus a square grid"));
        }
        let depth = w.count_indexed("blocks.");
        let fc1 = "blocks.0.mlp.fc1.weight";
        let hidden = w
            .shape(fc1)
            .map(|s| s[0])
            .ok_or_else(|| w.missing(fc1, None))?;
        let s = Shape {
            width: ps[0],
            patch: ps[2],
            side,
            depth,
            hidden,
        };
        let c = s.width;
        // The reference zeroes the key third of each qkv bias.
        for i in 0..depth {
            let kb = format!("blocks.{i}.attn.qkv.bias");
            if let Some(b) = w.take_opt(&kb, &[3 * c])? {
                let b = b.copy();
                let _ = tch::no_grad(|| b.narrow(0, c, c).zero_());
                w.insert(&kb, b, "key bias zeroed");
            }
        }
        // Read by timm, not by the discriminator.
        for p in ["norm.", "head."] {
            w.drop_prefix(p);
        }
        let (mut backbone, vars, _) = vars::load(w, |vb| Self::build(&vb, &s, heads))?;
        backbone.vars = vars;
        Ok(backbone)
    }

    fn build(vb: &VarBuilder, s: &Shape, heads: i64) -> Result<Self, WeightError> {
        let c = s.width;
        let patch_embed = PatchEmbed::new(&vb.pp("patch_embed"), c, s.patch, true)?;
        let cls_token = vb.param("cls_token", &[1, 1, c], Init::Zeros)?;
        let pos_embed = vb.param("pos_embed", &[1, 1 + s.side * s.side, c], Init::Zeros)?;
        let shape = BlockShape {
            width: c,
            heads,
            hidden: s.hidden,
            act: Activation::GeluTanh,
            eps: EPS,
            layer_scale: None,
        };
        let blocks = (0..s.depth)
            .map(|i| Block::new(&vb.pp("blocks").pp(i), &shape, LinearInit::Timm))
            .collect::<Result<Vec<_>, _>>()?;
        let m = Tensor::from_slice(&[0.485f32, 0.456, 0.406]).reshape([1, 3, 1, 1]);
        let sd = Tensor::from_slice(&[0.229f32, 0.224, 0.225]).reshape([1, 3, 1, 1]);
        Ok(Self {
            vars: Vars::default(),
            patch_embed,
            cls_token,
            pos_embed,
            blocks,
            width: c,
            img_size: s.side * s.patch,
            key_depths: KEY_DEPTHS
                .iter()
                .copied()
                .filter(|&d| d < s.depth)
                .collect(),
            x_scale: vb.derived("x_scale", 0.5 / &sd),
            x_shift: vb.derived("x_shift", (0.5 - m) / sd),
        })
    }

    /// Every tensor, under the name it was read by.
    pub fn vars(&self) -> &Vars {
        &self.vars
    }

    /// Move every tensor to `device` (fp32), in place.
    pub fn to(&mut self, device: tch::Device) {
        self.vars.to(device, Kind::Float);
    }

    /// Number of readings (heads): the patch embedding plus each key depth.
    pub fn readings(&self) -> usize {
        1 + self.key_depths.len()
    }

    /// Normalise and bring `x` to the backbone's size; `rng` draws the crop coin and offsets.
    pub fn prepare(&self, x: &Tensor, rng: &mut SplitMix) -> Tensor {
        let x = &self.x_scale * x.to_kind(Kind::Float) + &self.x_shift;
        let (h, w) = (x.size()[2], x.size()[3]);
        let s = self.img_size;
        if h > s && w > s && rng.uniform() <= 0.5 {
            let i = (rng.uniform() * (h - s + 1) as f64) as i64;
            let j = (rng.uniform() * (w - s + 1) as f64) as i64;
            x.narrow(2, i, s).narrow(3, j, s)
        } else if h == s && w == s {
            x
        } else if h > s {
            x.adaptive_avg_pool2d([s, s])
        } else {
            x.upsample_bicubic2d([s, s], false, None, None)
        }
    }

    /// The readings of prepared input `x`: (B, C, L) each.
    pub fn forward(&self, x: &Tensor) -> Vec<Tensor> {
        let b = x.size()[0];
        let x = self.patch_embed.forward(x);
        let x = Tensor::cat(&[self.cls_token.expand([b, 1, self.width], false), x], 1)
            + &self.pos_embed;
        let readout = |x: &Tensor| {
            let n = x.size()[1];
            (x.narrow(1, 1, n - 1) + x.narrow(1, 0, 1)).transpose(1, 2)
        };
        let mut out = vec![readout(&x)];
        let mut x = x;
        let last = *self.key_depths.last().unwrap_or(&-1);
        for (i, block) in self.blocks.iter().enumerate() {
            if i as i64 > last {
                break;
            }
            x = block.forward(&x, None);
            if self.key_depths.contains(&(i as i64)) {
                out.push(readout(&x));
            }
        }
        out
    }
}
