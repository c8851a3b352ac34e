//! The DINO discriminator of spec §5.2 (reference `discriminator_dino.py` `DinoDisc`): a
//! frozen DINO ViT-S/16 (GELU-tanh MLPs, key bias of qkv zeroed, no final norm) read at
//! the patch embedding and after blocks 2, 5, 8, 11 (patch tokens + cls token, as (B, C, L)),
//! each reading scored by a trainable head: [spectral-norm Conv1d k1 + BatchNorm (batch
//! statistics, eps 1e-6) + LeakyReLU 0.2] → residual [spectral-norm Conv1d k9, circular
//! padding, + BN + LeakyReLU], `(f(x) + x)/√2` → spectral-norm Conv1d C → 1. Logits of the
//! five heads are concatenated, (B, 5·L).
//!
//! Input in [-1, 1] is ImageNet-normalised, then brought to the backbone's size: when both
//! sides are larger, a random crop with probability ½, else an area (shrinking) or bicubic
//! (growing) resize. The backbone's size is read from its position table (224 for the real
//! ViT-S/16), so tiny test backbones work at their own size.
//!
//! Weights: the backbone from timm's `vit_small_patch16_224.dino` `model.safetensors`
//! (same tensors as `dino_deitsmall16_pretrain.pth`); the heads are this module's state, under
//! the reference's `heads.{i}.…` names (spectral norm's `weight_orig`, `weight_u`,
//! `weight_v`; BatchNorm's running statistics).

use std::collections::HashMap;
use std::path::Path;

use maetok_teachers::nn::{load, Activation, Block, PatchEmbed};
use maetok_teachers::weights::{WeightError, Weights};
use tch::{Kind, Tensor};

use crate::train::rng::SplitMix;

const HINT: &str =
    "the discriminator backbone: timm `vit_small_patch16_224.dino` model.safetensors";
const EPS: f64 = 1e-6;
const KEY_DEPTHS: [i64; 4] = [2, 5, 8, 11];

/// Frozen DINO ViT backbone.
pub struct DinoBackbone {
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

impl DinoBackbone {
    pub fn load(path: &Path, heads: i64) -> Result<Self, WeightError> {
        let mut w = Weights::load(path, HINT)?;
        let proj = w.take_any("patch_embed.proj.weight")?;
        let c = proj.size()[0];
        let p = proj.size()[2];
        let bias = w.take_opt("patch_embed.proj.bias", &[c])?;
        let cls_token = w.take("cls_token", &[1, 1, c])?;
        let pos_embed = w.take_any("pos_embed")?;
        let rows = pos_embed.size()[1] - 1;
        let side = (rows as f64).sqrt().round() as i64;
        if side * side != rows {
            return Err(w.layout_error("`pos_embed` is not a class row plus a square grid"));
        }
        let depth = w.count_indexed("blocks.");
        let key_depths: Vec<i64> = KEY_DEPTHS.iter().copied().filter(|&d| d < depth).collect();
        let mut blocks = Vec::new();
        for i in 0..depth {
            let prefix = format!("blocks.{i}");
            // The reference zeroes the key third of each qkv bias.
            let kb = format!("{prefix}.attn.qkv.bias");
            if let Some(b) = w.take_opt(&kb, &[3 * c])? {
                let b = b.copy();
                let _ = tch::no_grad(|| b.narrow(0, c, c).zero_());
                w.insert(&kb, b, "key bias zeroed");
            }
            blocks.push(load::block(
                &mut w,
                &prefix,
                c,
                heads,
                Activation::GeluTanh,
                EPS,
            )?);
        }
        for k in ["norm.weight", "norm.bias", "head.weight", "head.bias"] {
            let _ = w.take_any(k);
        }
        let m = Tensor::from_slice(&[0.485f32, 0.456, 0.406]).reshape([1, 3, 1, 1]);
        let s = Tensor::from_slice(&[0.229f32, 0.224, 0.225]).reshape([1, 3, 1, 1]);
        Ok(Self {
            patch_embed: PatchEmbed::new(proj, bias),
            cls_token,
            pos_embed,
            blocks,
            width: c,
            img_size: side * p,
            key_depths,
            x_scale: 0.5 / &s,
            x_shift: (0.5 - m) / s,
        })
    }

    pub fn to(&self, device: tch::Device) -> Self {
        let mv = |t: &Tensor| t.to_device(device);
        Self {
            patch_embed: self.patch_embed.to(device, Kind::Float),
            cls_token: mv(&self.cls_token),
            pos_embed: mv(&self.pos_embed),
            blocks: self
                .blocks
                .iter()
                .map(|b| b.to(device, Kind::Float))
                .collect(),
            width: self.width,
            img_size: self.img_size,
            key_depths: self.key_depths.clone(),
            x_scale: mv(&self.x_scale),
            x_shift: mv(&self.x_shift),
        }
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

/// A Conv1d whose weight is divided by its largest singular value, estimated by one power
/// iteration per training forward (`torch.nn.utils.spectral_norm`, dim 0, eps 1e-12).
pub struct SnConv1d {
    pub weight_orig: Tensor,
    pub bias: Tensor,
    pub u: Tensor,
    pub v: Tensor,
    pub padding: i64,
}

fn unit(t: &Tensor) -> Tensor {
    t / t.norm().clamp_min(1e-12)
}

impl SnConv1d {
    fn init(c_out: i64, c_in: i64, k: i64, padding: i64, opts: (Kind, tch::Device)) -> Self {
        let bound = 1.0 / ((c_in * k) as f64).sqrt();
        let w = Tensor::rand([c_out, c_in, k], opts) * (2.0 * bound) - bound;
        let b = Tensor::rand([c_out], opts) * (2.0 * bound) - bound;
        Self {
            u: unit(&Tensor::randn([c_out], opts)),
            v: unit(&Tensor::randn([c_in * k], opts)),
            weight_orig: w,
            bias: b,
            padding,
        }
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let out = self.weight_orig.size()[0];
        let mat = self.weight_orig.reshape([out, -1]);
        if train {
            tch::no_grad(|| {
                let m = mat.detach();
                let v = unit(&m.transpose(0, 1).mv(&self.u));
                let u = unit(&m.mv(&v));
                let mut sv = self.v.shallow_clone();
                let mut su = self.u.shallow_clone();
                sv.copy_(&v);
                su.copy_(&u);
            });
        }
        // Copies: later forwards update the vectors in place, and this forward's backward
        // needs the ones it used (torch's SpectralNorm clones them too).
        let (u, v) = (self.u.detach().copy(), self.v.detach().copy());
        let sigma = u.dot(&mat.mv(&v));
        let weight = &self.weight_orig / sigma;
        let x = if self.padding > 0 {
            // Circular padding.
            let l = x.size()[2];
            let p = self.padding;
            Tensor::cat(
                &[x.narrow(2, l - p, p), x.shallow_clone(), x.narrow(2, 0, p)],
                2,
            )
        } else {
            x.shallow_clone()
        };
        x.conv1d(&weight, Some(&self.bias), [1], [0], [1], 1)
    }
}

/// BatchNorm over (batch, length) with running statistics (momentum 0.1, eps 1e-6).
pub struct BatchNorm1d {
    pub weight: Tensor,
    pub bias: Tensor,
    pub running_mean: Tensor,
    pub running_var: Tensor,
    pub num_batches_tracked: Tensor,
}

impl BatchNorm1d {
    fn init(c: i64, opts: (Kind, tch::Device)) -> Self {
        Self {
            weight: Tensor::ones([c], opts),
            bias: Tensor::zeros([c], opts),
            running_mean: Tensor::zeros([c], opts),
            running_var: Tensor::ones([c], opts),
            num_batches_tracked: Tensor::zeros([], (Kind::Int64, opts.1)),
        }
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        if train {
            let mut n = self.num_batches_tracked.shallow_clone();
            let _ = tch::no_grad(|| n.g_add_scalar_(1));
        }
        Tensor::batch_norm(
            x,
            Some(&self.weight),
            Some(&self.bias),
            Some(&self.running_mean),
            Some(&self.running_var),
            train,
            0.1,
            EPS,
            false,
        )
    }
}

/// One head: block(k1) → residual block(k9) → SN Conv1d C → 1.
pub struct Head {
    conv0: SnConv1d,
    bn0: BatchNorm1d,
    conv1: SnConv1d,
    bn1: BatchNorm1d,
    out: SnConv1d,
}

impl Head {
    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let h = leaky(&self.bn0.forward(&self.conv0.forward(x, train), train));
        let f = leaky(&self.bn1.forward(&self.conv1.forward(&h, train), train));
        let h = (f + &h) * std::f64::consts::FRAC_1_SQRT_2;
        self.out.forward(&h, train)
    }

    /// (name suffix, tensor, trainable) under the reference's `heads.{i}.` layout.
    fn tensors(&self) -> Vec<(String, &Tensor, bool)> {
        let mut v = Vec::new();
        for (p, c) in [
            ("0.0", &self.conv0),
            ("1.fn.0", &self.conv1),
            ("2", &self.out),
        ] {
            v.push((format!("{p}.weight_orig"), &c.weight_orig, true));
            v.push((format!("{p}.bias"), &c.bias, true));
            v.push((format!("{p}.weight_u"), &c.u, false));
            v.push((format!("{p}.weight_v"), &c.v, false));
        }
        for (p, b) in [("0.1", &self.bn0), ("1.fn.1", &self.bn1)] {
            v.push((format!("{p}.weight"), &b.weight, true));
            v.push((format!("{p}.bias"), &b.bias, true));
            v.push((format!("{p}.running_mean"), &b.running_mean, false));
            v.push((format!("{p}.running_var"), &b.running_var, false));
            v.push((
                format!("{p}.num_batches_tracked"),
                &b.num_batches_tracked,
                false,
            ));
        }
        v
    }
}

/// LeakyReLU with slope 0.2 (`nn.LeakyReLU(0.2)`, same gradient: 1 above 0, 0.2 else).
fn leaky(x: &Tensor) -> Tensor {
    x.where_self(&x.gt(0.0), &(x * 0.2))
}

pub struct Discriminator {
    pub backbone: DinoBackbone,
    pub heads: Vec<Head>,
}

impl Discriminator {
    /// A backbone from `path` with freshly initialised heads (PyTorch's default Conv1d init,
    /// random unit power-iteration vectors, unit BatchNorm).
    pub fn new(path: &Path, backbone_heads: i64, device: tch::Device) -> Result<Self, WeightError> {
        let backbone = DinoBackbone::load(path, backbone_heads)?.to(device);
        let c = backbone.width;
        let opts = (Kind::Float, device);
        let heads = (0..backbone.readings())
            .map(|_| Head {
                conv0: SnConv1d::init(c, c, 1, 0, opts),
                bn0: BatchNorm1d::init(c, opts),
                conv1: SnConv1d::init(c, c, 9, 4, opts),
                bn1: BatchNorm1d::init(c, opts),
                out: SnConv1d::init(1, c, 1, 0, opts),
            })
            .collect();
        Ok(Self { backbone, heads })
    }

    /// Logits (B, readings·L) of already-augmented images in [-1, 1]; `train` runs power
    /// iterations and batch statistics (the reference's module is in training mode for both
    /// the generator's and the discriminator's forward).
    pub fn forward(&self, x: &Tensor, train: bool, rng: &mut SplitMix) -> Tensor {
        let b = x.size()[0];
        let readings = self.backbone.forward(&self.backbone.prepare(x, rng));
        let logits: Vec<Tensor> = self
            .heads
            .iter()
            .zip(&readings)
            .map(|(h, r)| h.forward(r, train).reshape([b, -1]))
            .collect();
        Tensor::cat(&logits, 1)
    }

    /// Trainable head parameters under the reference's names.
    pub fn params(&self) -> Vec<(String, Tensor)> {
        self.state(true)
    }

    /// Every head tensor (parameters and buffers) under the reference's names.
    pub fn state_dict(&self) -> Vec<(String, Tensor)> {
        self.state(false)
    }

    fn state(&self, trainable_only: bool) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (i, h) in self.heads.iter().enumerate() {
            for (k, t, trainable) in h.tensors() {
                if trainable || !trainable_only {
                    out.push((format!("heads.{i}.{k}"), t.shallow_clone()));
                }
            }
        }
        out
    }

    /// Restore head tensors written by `state_dict` (in place, so optimiser handles stay valid).
    pub fn load_state(
        &self,
        mut saved: HashMap<String, Tensor>,
    ) -> Result<(), crate::error::StateError> {
        for (k, mut t) in self.state_dict() {
            crate::train::restore::restore_into(&mut t, &mut saved, &k, "discriminator state")?;
        }
        Ok(())
    }
}
