//! The TOML configuration of `maetok train sit`. Defaults are the paper's SiT-XL/1 run on
//! MAETok's 128 × 32 latents (spec §7.3): AdamW lr 1e-4 constant, betas (0.9, 0.999),
//! eps 1e-8, no weight decay, global batch 256, 4M steps, grad clip 1.0, EMA 0.9999, linear
//! path with logit-normal t, label dropout 0.1, bf16 autocast on GPU. Unknown keys are
//! refused with their name.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::train::adamw::AdamWConfig;
use crate::train::config::DistConfig;
use crate::train::precision::Precision;
use crate::train::schedule::Cosine;
use maetok_diffusion::{Guidance, PathKind, SamplerKind, SamplerSpec, TimeSampling};
use maetok_models::denoiser::DenoiserConfig;
use maetok_models::lightningdit::{self, LightningDitConfig};
use maetok_models::sit::{self, SitConfig};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SitTrainConfig {
    pub model: SitModelSection,
    pub data: SitDataConfig,
    pub transport: TransportConfig,
    pub optim: SitOptimConfig,
    pub train: SitLoopConfig,
    pub dist: DistConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SitModelSection {
    /// A name of `maetok_models::sit::PRESETS` (`SiT-XL/1`, `SiT-L/1`, `SiT-B/1`, …) or of
    /// `maetok_models::lightningdit::PRESETS` (`LightningDiT-XL/1`, …).
    pub preset: String,
    pub num_classes: i64,
    pub class_dropout_prob: f64,
    pub qk_norm: bool,
}

/// Where the latents' statistics come from (spec §6: the model sees `(z − mean) / std`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalize {
    /// The tokenizer's `vq_mean` / `vq_std` (what the official scripts use).
    Tokenizer,
    /// The latent folder's measured mean and std.
    Manifest,
    /// None (mean 0, std 1).
    None,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SitDataConfig {
    /// The latent folder (`maetok encode --output DIR`); `--latents` overrides it.
    pub latents: PathBuf,
    /// The tokenizer checkpoint folder the latents came from: its `vq_mean`/`vq_std` when
    /// `normalize = "tokenizer"`, and the decoder of the sample grids. Optional otherwise.
    pub tokenizer: Option<PathBuf>,
    pub normalize: Normalize,
    /// The global batch (split evenly over the processes).
    pub batch_size: usize,
    pub prefetch: usize,
    /// Decoded latent shards each process keeps in memory, in MiB (0: read every batch
    /// from the files). ImageNet-256's 1.28 M images are 42 GB of f32 latents (crop and
    /// flip); a budget below the folder caches the shards touched first and reads the rest.
    pub cache_mb: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransportConfig {
    pub path: PathKind,
    pub time_sampling: TimeSampling,
    /// Weight of LightningDiT's cosine-direction term `1 − cos(v_pred, v)` added to the
    /// velocity MSE (spec §7.5: 1 with `use_cosine_loss`; 0 for SiT).
    pub cosine_weight: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SitOptimConfig {
    /// Constant after the warm-up (no decay: the paper's schedule).
    pub lr: f64,
    pub warmup_steps: u64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Global gradient-norm clip (0: none).
    pub grad_clip: f64,
    pub ema_decay: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SitLoopConfig {
    pub steps: u64,
    pub seed: u64,
    /// `cpu`, `cuda`, `cuda:N`.
    pub device: String,
    pub precision: Precision,
    pub log_every: u64,
    pub checkpoint_every: u64,
    /// Step folders kept besides milestones (0: all).
    pub keep_checkpoints: usize,
    /// Every this many steps a step folder is kept for good (0: none).
    pub milestone_every: u64,
    /// A sample grid every this many steps (0: only at the end), decoded through
    /// `data.tokenizer`; latents only are sampled when there is none.
    pub sample_every: u64,
    /// Classes of the grid's rows (empty: the first `grid_classes` classes spread over
    /// the label range), and samples per row.
    pub grid_labels: Vec<i64>,
    pub grid_classes: usize,
    pub grid_per_class: usize,
    /// The grid's sampler: the ODE is cheap and noise-free, the fixed noise shows progress.
    pub grid_sampler: SamplerKind,
    pub grid_steps: usize,
    pub grid_cfg_scale: f64,
}

impl Default for SitModelSection {
    fn default() -> Self {
        Self {
            preset: "SiT-XL/1".into(),
            num_classes: 1000,
            class_dropout_prob: 0.1,
            qk_norm: false,
        }
    }
}

impl Default for SitDataConfig {
    fn default() -> Self {
        Self {
            latents: PathBuf::new(),
            tokenizer: None,
            normalize: Normalize::Tokenizer,
            batch_size: 256,
            prefetch: 4,
            cache_mb: 0,
        }
    }
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            path: PathKind::Linear,
            time_sampling: TimeSampling::LogitNormal,
            cosine_weight: 0.0,
        }
    }
}

impl Default for SitOptimConfig {
    fn default() -> Self {
        Self {
            lr: 1e-4,
            warmup_steps: 0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            grad_clip: 1.0,
            ema_decay: 0.9999,
        }
    }
}

impl Default for SitLoopConfig {
    fn default() -> Self {
        Self {
            steps: 4_000_000,
            seed: 0,
            device: "cuda".into(),
            precision: Precision::Auto,
            log_every: 100,
            checkpoint_every: 10_000,
            keep_checkpoints: 3,
            milestone_every: 100_000,
            sample_every: 10_000,
            grid_labels: Vec::new(),
            grid_classes: 8,
            grid_per_class: 4,
            grid_sampler: SamplerKind::Euler,
            grid_steps: 50,
            grid_cfg_scale: 4.0,
        }
    }
}

impl SitTrainConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::in_file(path, e))?;
        Self::parse(&text).map_err(|e| ConfigError::in_file(path, e))
    }

    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let c = Self::parse_unchecked(text)?;
        c.check().map_err(ConfigError::Invalid)?;
        Ok(c)
    }

    pub fn parse_unchecked(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serialises")
    }

    fn check(&self) -> Result<(), String> {
        let m = &self.model;
        if !preset_names().any(|p| p == m.preset) {
            return Err(format!(
                "model.preset = {:?}: not one of {}",
                m.preset,
                preset_names().collect::<Vec<_>>().join(", ")
            ));
        }
        let w = self.transport.cosine_weight;
        if !(w >= 0.0 && w.is_finite()) {
            return Err(format!("transport.cosine_weight = {w}: must be ≥ 0"));
        }
        if m.num_classes < 1 || !(0.0..1.0).contains(&m.class_dropout_prob) {
            return Err(format!(
                "model.num_classes = {} must be ≥ 1 and model.class_dropout_prob = {} in [0, 1)",
                m.num_classes, m.class_dropout_prob
            ));
        }
        let o = &self.optim;
        for (k, v) in [("optim.lr", o.lr), ("optim.eps", o.eps)] {
            if !(v > 0.0 && v.is_finite()) {
                return Err(format!("{k} = {v}: must be positive"));
            }
        }
        for (k, v) in [
            ("optim.beta1", o.beta1),
            ("optim.beta2", o.beta2),
            ("optim.ema_decay", o.ema_decay),
        ] {
            if !(0.0..1.0).contains(&v) {
                return Err(format!("{k} = {v}: must be in [0, 1)"));
            }
        }
        if o.weight_decay < 0.0 || o.grad_clip < 0.0 {
            return Err("optim.weight_decay and optim.grad_clip must be ≥ 0".into());
        }
        if self.data.batch_size == 0 || self.train.steps == 0 {
            return Err("data.batch_size and train.steps must be ≥ 1".into());
        }
        let t = &self.train;
        if let Some(l) = t.grid_labels.iter().find(|&&l| l < 0 || l >= m.num_classes) {
            return Err(format!(
                "train.grid_labels has {l}, outside 0..{}",
                m.num_classes
            ));
        }
        self.grid_spec()
            .validate()
            .map_err(|e| format!("train.grid_*: {e}"))?;
        // The device is checked where the run starts (`rank_device`): whether it is there
        // depends on the machine, not on the file.
        Ok(())
    }

    /// The model on latents of `(tokens, channels)`.
    pub fn denoiser(&self, tokens: i64, channels: i64) -> DenoiserConfig {
        let m = &self.model;
        let path = match self.transport.path {
            PathKind::Linear => "linear",
            PathKind::Cosine => "cosine",
        };
        if let Some(mut c) = LightningDitConfig::preset(&m.preset, tokens, channels, m.num_classes)
        {
            c.class_dropout_prob = m.class_dropout_prob;
            c.use_qknorm = m.qk_norm;
            c.path_type = path.into();
            return DenoiserConfig::LightningDit(c);
        }
        let mut c = SitConfig::preset(&m.preset, tokens, channels, m.num_classes)
            .expect("a checked preset");
        c.class_dropout_prob = m.class_dropout_prob;
        c.use_cfg = m.class_dropout_prob > 0.0;
        c.qk_norm = m.qk_norm;
        c.path_type = path.into();
        DenoiserConfig::Sit(c)
    }

    pub fn adamw(&self) -> AdamWConfig {
        let o = &self.optim;
        AdamWConfig {
            beta1: o.beta1,
            beta2: o.beta2,
            eps: o.eps,
            weight_decay: o.weight_decay,
        }
    }

    /// Constant lr after an optional linear warm-up from 0.
    pub fn schedule(&self) -> Cosine {
        let o = &self.optim;
        Cosine {
            base: o.lr,
            min: o.lr,
            warmup: o.warmup_steps,
            warmup_lr_init: 0.0,
            total: self.train.steps,
        }
    }

    /// The grid's classes: `grid_labels`, or `grid_classes` spread over the label range.
    pub fn grid_labels(&self) -> Vec<i64> {
        let t = &self.train;
        if !t.grid_labels.is_empty() {
            return t.grid_labels.clone();
        }
        let n = (t.grid_classes as i64).clamp(1, self.model.num_classes);
        (0..n).map(|i| i * self.model.num_classes / n).collect()
    }

    pub fn grid_spec(&self) -> SamplerSpec {
        let t = &self.train;
        SamplerSpec {
            kind: t.grid_sampler,
            steps: t.grid_steps,
            guidance: Guidance {
                scale: t.grid_cfg_scale,
                low: 0.0,
                high: 1.0,
            },
            path: self.transport.path,
        }
    }
}

/// Every preset name `model.preset` takes.
fn preset_names() -> impl Iterator<Item = &'static str> {
    sit::PRESETS
        .iter()
        .chain(lightningdit::PRESETS)
        .map(|p| p.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_papers_sit_xl_run_and_typos_are_refused() {
        let base = "[data]\ntokenizer = \"t\"\n";
        let c = SitTrainConfig::parse(base).unwrap();
        let DenoiserConfig::Sit(s) = c.denoiser(128, 32) else {
            panic!("the default is a SiT")
        };
        assert_eq!((s.hidden_size, s.depth, s.num_heads), (1152, 28, 16));
        assert_eq!(s.num_values(), 675_000_608);
        assert_eq!(
            (c.optim.lr, c.data.batch_size, c.train.steps),
            (1e-4, 256, 4_000_000)
        );
        assert_eq!(c.schedule().lr(3_999_999), 1e-4);
        let e = SitTrainConfig::parse(&format!("{base}[optim]\nlearning_rate = 1\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("learning_rate"), "{e}");
        let e =
            SitTrainConfig::parse("[model]\npreset = \"SiT-XXL/1\"\n[data]\ntokenizer = \"t\"\n")
                .unwrap_err()
                .to_string();
        assert!(e.contains("SiT-XL/1"), "{e}");
        assert_eq!(SitTrainConfig::parse(&c.to_toml()).unwrap(), c);
        assert_eq!(c.grid_labels(), [0, 125, 250, 375, 500, 625, 750, 875]);
    }
}
