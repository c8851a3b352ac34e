//! LightningDiT with patch size 1 on 1-D latent tokens (spec §7.5): the official network
//! (`hustvl/LightningDiT`) with its 2-D pieces made 1-D the way MAETok's SiT is: a Linear
//! `x_embedder`, the fixed 1-D sinusoid `pos_embed`, rotary tables over the token index
//! (`feat_rope.freqs_cos/sin`, (T, head_dim)), no unpatchify. How the MAETok authors did
//! this is UNCONFIRMED (spec §12); a loaded model reads its position and rotary tables from
//! the file, so only a fresh one depends on the choice.
//!
//! The official code runs on **t = 0 noise, t = 1 data** with velocity `data − noise`;
//! everything else in maetok has t = 1 noise. [`LightningDit::forward`] is the one
//! boundary: it calls the network at `1 − t` and negates its output, so the loop, the loss
//! and the samplers see the same velocity as SiT's. [`LightningDit::forward_native`] is the
//! network in its own convention.

use std::collections::HashMap;
use std::path::Path;

use maetok_nn::rope::{rotary_1d, RotaryTable};
use maetok_nn::vars::{self, VarBuilder, Vars};
use maetok_nn::{Init, Linear, LinearInit, WeightError, Weights};
use tch::{Kind, Tensor};

use super::block::{FinalLayer, LightningDitBlock};
use super::LightningDitConfig;
use crate::denoiser::{ConfigFileError, DenoiserError};
use crate::sit::embed::{sincos_1d, TimestepEmbedder};

/// The part every LightningDiT tensor is tagged with (the whole model trains).
pub const LIGHTNING_DIT: &str = "lightningdit";

pub struct LightningDit {
    pub config: LightningDitConfig,
    pub vars: Vars,
    pub x_embedder: Linear,
    /// (1, T, C), fixed.
    pub pos_embed: Tensor,
    /// Shared by every block's attention, when `use_rope`.
    pub rope: Option<RotaryTable>,
    pub t_embedder: TimestepEmbedder,
    /// `y_embedder.embedding_table.weight` (classes [+ null], C).
    pub label_table: Tensor,
    pub blocks: Vec<LightningDitBlock>,
    pub final_layer: FinalLayer,
}

struct Parts {
    x_embedder: Linear,
    pos_embed: Tensor,
    rope: Option<RotaryTable>,
    t_embedder: TimestepEmbedder,
    label_table: Tensor,
    blocks: Vec<LightningDitBlock>,
    final_layer: FinalLayer,
}

impl LightningDit {
    /// The one definition of its tensors (`vb` at the state dict's root).
    fn build(vb: &VarBuilder, cfg: &LightningDitConfig) -> Result<Parts, WeightError> {
        let vb = vb.part(LIGHTNING_DIT);
        let (c, t, d) = (cfg.hidden_size, cfg.input_size, cfg.head_dim());
        let rope = if cfg.use_rope {
            let table = std::cell::OnceCell::new();
            let fresh = || rotary_1d(t, d, cfg.rope_theta);
            let rp = vb.pp("feat_rope");
            let cos = rp.buffer_f32_with("freqs_cos", &[t, d], || {
                table.get_or_init(fresh).0.shallow_clone()
            })?;
            let sin = rp.buffer_f32_with("freqs_sin", &[t, d], || {
                table.get_or_init(fresh).1.shallow_clone()
            })?;
            Some(RotaryTable { cos, sin })
        } else {
            None
        };
        Ok(Parts {
            x_embedder: Linear::new(&vb.pp("x_embedder"), cfg.in_channels, c, LinearInit::Xavier)?,
            pos_embed: vb.buffer_with("pos_embed", &[1, t, c], || sincos_1d(t, c).unsqueeze(0))?,
            rope,
            t_embedder: TimestepEmbedder::new(&vb.pp("t_embedder"), c)?,
            label_table: vb.pp("y_embedder.embedding_table").param(
                "weight",
                &[cfg.label_rows(), c],
                Init::Randn(0.02),
            )?,
            blocks: (0..cfg.depth)
                .map(|i| LightningDitBlock::new(&vb.pp("blocks").pp(i), cfg))
                .collect::<Result<_, _>>()?,
            final_layer: FinalLayer::new(&vb.pp("final_layer"), cfg)?,
        })
    }

    fn assemble(config: LightningDitConfig, vars: Vars, p: Parts) -> Self {
        Self {
            config,
            vars,
            x_embedder: p.x_embedder,
            pos_embed: p.pos_embed,
            rope: p.rope,
            t_embedder: p.t_embedder,
            label_table: p.label_table,
            blocks: p.blocks,
            final_layer: p.final_layer,
        }
    }

    /// A freshly initialised model (the official `initialize_weights`), on the CPU.
    pub fn fresh(config: LightningDitConfig) -> Result<Self, DenoiserError> {
        config
            .validate()
            .map_err(|m| ConfigFileError::new(Path::new("<preset>"), m))?;
        let (parts, vars) = vars::init(|vb| Self::build(&vb, &config))?;
        Ok(Self::assemble(config, vars, parts))
    }

    /// The model held by `w` (missing, mis-shaped and unexpected keys are errors).
    pub fn from_weights(w: Weights, config: LightningDitConfig) -> Result<Self, DenoiserError> {
        let path = w.path().display().to_string();
        let (parts, vars, left) = vars::load(w, |vb| Self::build(&vb, &config))?;
        if !left.is_empty() {
            return Err(DenoiserError::Unexpected {
                path,
                model: "LightningDiT",
                keys: left,
            });
        }
        Ok(Self::assemble(config, vars, parts))
    }

    pub fn to(&mut self, device: tch::Device, kind: Kind) {
        self.vars.to(device, kind);
    }

    pub fn device(&self) -> tch::Device {
        self.x_embedder.weight.device()
    }

    pub fn kind(&self) -> Kind {
        self.x_embedder.weight.kind()
    }

    /// The network in the official convention: x (B, T, C) at t (B,) with **t = 0 noise,
    /// t = 1 data** → its velocity `data − noise`.
    pub fn forward_native(&self, x: &Tensor, t: &Tensor, y: &Tensor) -> Tensor {
        let x = self.x_embedder.forward(&x.to_kind(self.kind())) + &self.pos_embed;
        let y = Tensor::embedding(&self.label_table, y, -1, false, false);
        let c = self.t_embedder.forward(t) + y;
        let x = self
            .blocks
            .iter()
            .fold(x, |x, b| b.forward(&x, &c, self.rope.as_ref()));
        self.final_layer.forward(&x, &c)
    }

    /// maetok's convention (t = 1 noise, velocity `noise − data`): the network at `1 − t`,
    /// negated.
    pub fn forward(&self, x: &Tensor, t: &Tensor, y: &Tensor) -> Tensor {
        let t_native = t.neg() + 1.0;
        -self.forward_native(x, &t_native, y)
    }

    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        self.save_with(dir, &HashMap::new())
    }

    /// `dir/model.safetensors` (fp32, some tensors replaced by name) and `config.json`.
    pub fn save_with(&self, dir: &Path, replace: &HashMap<&str, &Tensor>) -> std::io::Result<()> {
        crate::denoiser::save_folder(&self.vars, replace, dir, |d| self.config.save(d))
    }
}
