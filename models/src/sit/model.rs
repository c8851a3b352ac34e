//! SiT with patch size 1 on 1-D latent tokens (spec §7.1): `x_embedder` Linear + the fixed
//! 1-D sinusoid, c = t_emb + y_emb, adaLN-Zero blocks, adaLN final layer. A checkpoint folder
//! is `model.safetensors` (the official state dict's keys) + `config.json`
//! ([`SitConfig`]).

use std::collections::HashMap;
use std::path::Path;

use maetok_nn::vars::{self, VarBuilder, Vars};
use maetok_nn::{Init, Linear, LinearInit, WeightError, Weights};

use crate::denoiser::{ConfigFileError, DenoiserError};
use tch::{Kind, Tensor};

use super::block::{FinalLayer, SitBlock};
use super::embed::{sincos_1d, TimestepEmbedder};
use super::SitConfig;

/// The part every SiT tensor is tagged with (the whole model trains).
pub const SIT: &str = "sit";

pub struct Sit {
    pub config: SitConfig,
    /// Every tensor under its official name.
    pub vars: Vars,
    pub x_embedder: Linear,
    /// (1, T, C), fixed.
    pub pos_embed: Tensor,
    pub t_embedder: TimestepEmbedder,
    /// `y_embedder.embedding_table.weight` (classes [+ null], C).
    pub label_table: Tensor,
    pub blocks: Vec<SitBlock>,
    pub final_layer: FinalLayer,
}

type Parts = (
    Linear,
    Tensor,
    TimestepEmbedder,
    Tensor,
    Vec<SitBlock>,
    FinalLayer,
);

impl Sit {
    /// The one definition of SiT's tensors (`vb` at the state dict's root).
    fn build(vb: &VarBuilder, cfg: &SitConfig) -> Result<Parts, WeightError> {
        let vb = vb.part(SIT);
        let (c, t) = (cfg.hidden_size, cfg.input_size);
        let x_embedder = Linear::new(&vb.pp("x_embedder"), cfg.in_channels, c, LinearInit::Xavier)?;
        let pos_embed = vb.buffer_with("pos_embed", &[1, t, c], || sincos_1d(t, c).unsqueeze(0))?;
        let t_embedder = TimestepEmbedder::new(&vb.pp("t_embedder"), c)?;
        let label_table = vb.pp("y_embedder.embedding_table").param(
            "weight",
            &[cfg.label_rows(), c],
            Init::Randn(0.02),
        )?;
        let blocks = (0..cfg.depth)
            .map(|i| SitBlock::new(&vb.pp("blocks").pp(i), cfg))
            .collect::<Result<_, _>>()?;
        let final_layer = FinalLayer::new(&vb.pp("final_layer"), cfg)?;
        Ok((
            x_embedder,
            pos_embed,
            t_embedder,
            label_table,
            blocks,
            final_layer,
        ))
    }

    fn assemble(config: SitConfig, vars: Vars, p: Parts) -> Self {
        let (x_embedder, pos_embed, t_embedder, label_table, blocks, final_layer) = p;
        Self {
            config,
            vars,
            x_embedder,
            pos_embed,
            t_embedder,
            label_table,
            blocks,
            final_layer,
        }
    }

    /// A freshly initialised SiT (the official `initialize_weights`: Xavier Linears, N(0,
    /// 0.02) label table and time MLP, adaLN and final layer zero), on the CPU.
    pub fn fresh(config: SitConfig) -> Result<Self, DenoiserError> {
        config
            .validate()
            .map_err(|m| ConfigFileError::new(Path::new("<preset>"), m))?;
        let (parts, vars) = vars::init(|vb| Self::build(&vb, &config))?;
        Ok(Self::assemble(config, vars, parts))
    }

    /// Load `dir/model.safetensors` with `dir/config.json`, strictly (a LightningDiT folder
    /// is refused: [`crate::denoiser::Denoiser::load`] reads either).
    pub fn load(dir: &Path) -> Result<Self, DenoiserError> {
        match crate::denoiser::Denoiser::load(dir)? {
            crate::denoiser::Denoiser::Sit(m) => Ok(m),
            crate::denoiser::Denoiser::LightningDit(_) => Err(ConfigFileError::new(
                &dir.join("config.json"),
                "a LightningDiT, not a SiT",
            )
            .into()),
        }
    }

    /// The model held by `w` (missing, mis-shaped and unexpected keys are errors).
    pub fn from_weights(w: Weights, config: SitConfig) -> Result<Self, DenoiserError> {
        let path = w.path().display().to_string();
        let (parts, vars, left) = vars::load(w, |vb| Self::build(&vb, &config))?;
        if !left.is_empty() {
            return Err(DenoiserError::Unexpected {
                path,
                model: "SiT",
                keys: left,
            });
        }
        Ok(Self::assemble(config, vars, parts))
    }

    /// Move/cast every tensor in place.
    pub fn to(&mut self, device: tch::Device, kind: Kind) {
        self.vars.to(device, kind);
    }

    pub fn device(&self) -> tch::Device {
        self.x_embedder.weight.device()
    }

    pub fn kind(&self) -> Kind {
        self.x_embedder.weight.kind()
    }

    /// x (B, T, C_in) latents at time t (B,) ∈ [0, 1] (t = 1 noise) with labels y (B,)
    /// (i64; `num_classes` is the null class) → the velocity (B, T, C_in) in the model's
    /// dtype. Labels are taken as given: training drops them before the call.
    pub fn forward(&self, x: &Tensor, t: &Tensor, y: &Tensor) -> Tensor {
        let x = self.x_embedder.forward(&x.to_kind(self.kind())) + &self.pos_embed;
        let y = Tensor::embedding(&self.label_table, y, -1, false, false);
        let c = self.t_embedder.forward(t) + y;
        let x = self.blocks.iter().fold(x, |x, b| b.forward(&x, &c));
        self.final_layer.forward(&x, &c)
    }

    /// Write `dir/model.safetensors` (fp32) and `dir/config.json`, each atomically.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        self.save_with(dir, &HashMap::new())
    }

    /// The same with some tensors' values replaced (the EMA weights, by name): a folder
    /// that loads as a SiT of its own.
    pub fn save_with(&self, dir: &Path, replace: &HashMap<&str, &Tensor>) -> std::io::Result<()> {
        crate::denoiser::save_folder(&self.vars, replace, dir, |d| self.config.save(d))
    }
}
