//! The DINO discriminator of spec §5.2 (reference `discriminator_dino.py` `DinoDisc`): the
//! frozen backbone (`maetok_teachers::dino_disc`) read at the patch embedding and after
//! blocks 2, 5, 8, 11, each reading scored by a trainable head: [spectral-norm Conv1d k1 +
//! BatchNorm (batch statistics, eps 1e-6) + LeakyReLU 0.2] → residual [spectral-norm Conv1d
//! k9, circular padding, + BN + LeakyReLU], `(f(x) + x)/√2` → spectral-norm Conv1d C → 1.
//! Logits of the five heads are concatenated, (B, 5·L).
//!
//! The heads are this module's state, under the reference's `heads.{i}.…` names (spectral
//! norm's `weight_orig`, `weight_u`, `weight_v`; BatchNorm's running statistics).

use std::collections::HashMap;
use std::path::Path;

use maetok_nn::vars::{self, VarBuilder, Vars};
use maetok_nn::{Init, WeightError};
use maetok_teachers::dino_disc::DinoBackbone;
use tch::{Kind, Tensor};

use crate::train::rng::SplitMix;

const EPS: f64 = 1e-6;

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
    /// PyTorch's default Conv1d init and random unit power-iteration vectors.
    fn new(
        vb: &VarBuilder,
        c_out: i64,
        c_in: i64,
        k: i64,
        padding: i64,
    ) -> Result<Self, WeightError> {
        let init = Init::torch_default(c_in * k);
        let unit_randn =
            |n: i64| move || unit(&Tensor::randn([n], (Kind::Float, tch::Device::Cpu)));
        Ok(Self {
            weight_orig: vb.param("weight_orig", &[c_out, c_in, k], init)?,
            bias: vb.param("bias", &[c_out], init)?,
            u: vb.buffer_with("weight_u", &[c_out], unit_randn(c_out))?,
            v: vb.buffer_with("weight_v", &[c_in * k], unit_randn(c_in * k))?,
            padding,
        })
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
    fn new(vb: &VarBuilder, c: i64) -> Result<Self, WeightError> {
        Ok(Self {
            weight: vb.param("weight", &[c], Init::Ones)?,
            bias: vb.param("bias", &[c], Init::Zeros)?,
            running_mean: vb.buffer("running_mean", &[c], Init::Zeros)?,
            running_var: vb.buffer("running_var", &[c], Init::Ones)?,
            num_batches_tracked: vb.buffer_with("num_batches_tracked", &[], || {
                Tensor::zeros([], (Kind::Int64, tch::Device::Cpu))
            })?,
        })
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

    /// The reference's `heads.{i}.` layout: `0` = [conv k1, BN], `1.fn` = the residual
    /// [conv k9, BN], `2` = the output conv.
    fn new(vb: &VarBuilder, c: i64) -> Result<Self, WeightError> {
        // Convolutions first, then the norms: the order the optimiser (and its clipping
        // norm's sum) has always seen them in.
        Ok(Self {
            conv0: SnConv1d::new(&vb.pp("0.0"), c, c, 1, 0)?,
            conv1: SnConv1d::new(&vb.pp("1.fn.0"), c, c, 9, 4)?,
            out: SnConv1d::new(&vb.pp("2"), 1, c, 1, 0)?,
            bn0: BatchNorm1d::new(&vb.pp("0.1"), c)?,
            bn1: BatchNorm1d::new(&vb.pp("1.fn.1"), c)?,
        })
    }
}

/// LeakyReLU with slope 0.2 (`nn.LeakyReLU(0.2)`, same gradient: 1 above 0, 0.2 else).
fn leaky(x: &Tensor) -> Tensor {
    x.where_self(&x.gt(0.0), &(x * 0.2))
}

pub struct Discriminator {
    pub backbone: DinoBackbone,
    pub heads: Vec<Head>,
    /// The heads' tensors (the backbone is frozen and never saved).
    pub vars: Vars,
}

impl Discriminator {
    /// A backbone from `path` with freshly initialised heads (PyTorch's default Conv1d init,
    /// random unit power-iteration vectors, unit BatchNorm), drawn on the CPU.
    pub fn new(path: &Path, backbone_heads: i64, device: tch::Device) -> Result<Self, WeightError> {
        let mut backbone = DinoBackbone::load(path, backbone_heads)?;
        backbone.to(device);
        let c = backbone.width;
        let (heads, mut vars) = vars::init(|vb| {
            (0..backbone.readings())
                .map(|i| Head::new(&vb.pp("heads").pp(i), c))
                .collect::<Result<Vec<_>, _>>()
        })?;
        vars.to(device, Kind::Float);
        Ok(Self {
            backbone,
            heads,
            vars,
        })
    }

    /// Logits (B, readings·L) of already-augmented images in [-1, 1]; `train` runs power
    /// iterations and batch statistics (the reference's module is in training mode for both
    /// the generator's and the discriminator's forward).
    pub fn forward(&self, x: &Tensor, train: bool, rng: &mut SplitMix) -> Tensor {
        self.heads_forward(&self.readings(x, rng), train)
    }

    /// The frozen backbone's readings of `x`, one tensor per head (per sample: no batch
    /// statistics), which a data-parallel job pools over its ranks before the heads.
    pub fn readings(&self, x: &Tensor, rng: &mut SplitMix) -> Vec<Tensor> {
        self.backbone.forward(&self.backbone.prepare(x, rng))
    }

    /// The heads on `readings` (their BatchNorm takes statistics over the whole batch
    /// given): logits (B, tokens · heads).
    pub fn heads_forward(&self, readings: &[Tensor], train: bool) -> Tensor {
        let b = readings[0].size()[0];
        let logits: Vec<Tensor> = self
            .heads
            .iter()
            .zip(readings)
            .map(|(h, r)| h.forward(r, train).reshape([b, -1]))
            .collect();
        Tensor::cat(&logits, 1)
    }

    /// Trainable head parameters under the reference's names.
    pub fn params(&self) -> Vec<(String, Tensor)> {
        self.vars.params(|_| true)
    }

    /// Every head tensor (parameters and buffers) under the reference's names.
    pub fn state_dict(&self) -> Vec<(String, Tensor)> {
        self.vars.named()
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
