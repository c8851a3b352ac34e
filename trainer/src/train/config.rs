//! The TOML configuration of `maetok train tokenizer|decoder`. Every key has the paper's
//! value as its default (spec §5.3, §5.4), so a config names only what it changes; unknown
//! keys are refused with the key's name, so a typo never silently trains something else.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::losses::gan::GanConfig;
use maetok_models::maetok::aux::AuxLoss;
use maetok_models::maetok::{DecoderShape, MaetokShape, TowerShape};

use super::adamw::AdamWConfig;
use super::schedule::Cosine;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub data: DataConfig,
    pub model: ModelSection,
    /// Auxiliary decoders and their targets (stage 1 only).
    pub aux: Vec<AuxConfig>,
    pub optim: OptimConfig,
    pub losses: LossConfig,
    pub gan: GanConfig,
    pub train: LoopConfig,
    /// Stage 2 (`train decoder`) only.
    pub decoder_ft: DecoderFtConfig,
    /// Data parallelism (read only when the job has more than one process).
    pub dist: DistConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistConfig {
    /// "auto" (NCCL on CUDA when libnccl.so loads, else the CPU backend), "nccl", or "cpu"
    /// (TCP through rank 0: for tests and debugging).
    pub backend: String,
    /// How long a rank waits for another before naming it and stopping the job
    /// (`MAETOK_DIST_TIMEOUT_S` overrides it). Covers rank 0's checkpoint writing.
    pub timeout_s: f64,
    /// Gradient bucket size for the all-reduce, MiB.
    pub bucket_mb: f64,
    /// Compare every rank's weights every this many steps (0: never).
    pub check_every: u64,
}

impl Default for DistConfig {
    fn default() -> Self {
        Self {
            backend: "auto".into(),
            timeout_s: 120.0,
            bucket_mb: 25.0,
            check_every: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// Shard folder written by `maetok preprocess`.
    pub shards: PathBuf,
    /// Images per step, all ranks together (the global batch, as the paper's tables give
    /// it): each of W ranks takes batch_size / W.
    pub batch_size: usize,
    /// Batches decoded ahead of the step.
    pub prefetch: usize,
    /// PNG decode threads (0: 1 when training on the CPU, whose cores are libtorch's; 4 on
    /// a GPU).
    pub decode_threads: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
/// `[model]`: the tokenizer's architecture in the flat form a config file names it by;
/// [`ModelSection::shape`] is the model's own description of it.
pub struct ModelSection {
    pub image_size: i64,
    pub patch_size: i64,
    pub width: i64,
    pub enc_depth: i64,
    pub dec_depth: i64,
    pub enc_heads: i64,
    pub dec_heads: i64,
    pub mlp_ratio: i64,
    pub num_latent_tokens: i64,
    pub latent_dim: i64,
    /// `movq` (the released configuration) or `plain`.
    pub decoder: String,
    pub dec_cls_token: bool,
    pub rope_theta: f64,
    /// LayerScale γ at initialisation (the reference: 1e-5).
    pub layer_scale_init: f64,
    /// Mask modeling in stage 1 (spec §3). `false` trains a plain autoencoder, the paper's
    /// AE baseline (Tab. 1a): no masking, no `encoder.mask_token`, and no auxiliary decoders
    /// (they predict the features of masked tokens).
    pub mask_modeling: bool,
    /// The auxiliary decoders' tower (spec §4.1).
    pub aux_width: i64,
    pub aux_depth: i64,
    pub aux_heads: i64,
    pub aux_mlp: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuxConfig {
    /// Module suffix: `hog`, `dino` or `clip` (the reference's names).
    pub name: String,
    /// The shard column holding the target (`hog`, `dinov2`, `siglip`, `clip`).
    pub target: String,
    /// `mse` (HOG) or `cosine` (features).
    pub loss: AuxLoss,
    #[serde(default = "one")]
    pub weight: f64,
}

fn one() -> f64 {
    1.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimConfig {
    /// Base learning rate, scaled by global batch / `lr_batch_ref` (spec §5.3: 1e-4 × 512/256).
    pub lr: f64,
    pub lr_batch_ref: usize,
    /// Cosine floor as a fraction of the scaled lr.
    pub min_lr_ratio: f64,
    pub warmup_steps: u64,
    pub warmup_lr_init: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Global L2 norm; 0 turns clipping off.
    pub grad_clip: f64,
    pub ema_decay: f64,
}

/// The generator objective's terms besides the auxiliary ones (spec §5.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LossConfig {
    /// Pixel MSE weight.
    pub pixel_weight: f64,
    /// LPIPS weight λ1, ramped linearly over `perceptual_warmup` steps; 0 turns LPIPS off.
    pub perceptual_weight: f64,
    pub perceptual_warmup: u64,
    /// VGG16 `features.*` safetensors and the LPIPS heads (docs/training.md names the files).
    pub lpips_vgg: Option<PathBuf>,
    pub lpips_heads: Option<PathBuf>,
    /// Keep the heads' Dropout(0.5) active while training, as the reference does.
    pub lpips_dropout: bool,
}

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            pixel_weight: 1.0,
            perceptual_weight: 1.0,
            perceptual_warmup: 10_000,
            lpips_vgg: None,
            lpips_heads: None,
            lpips_dropout: true,
        }
    }
}

impl LossConfig {
    /// w_p at 0-based step `step` (the reference passes `global_step = step + 1`).
    pub fn perceptual_at(&self, step: u64) -> f64 {
        let ramp = if self.perceptual_warmup == 0 {
            1.0
        } else {
            ((step + 1) as f64 / self.perceptual_warmup as f64).min(1.0)
        };
        self.perceptual_weight * ramp
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoopConfig {
    pub steps: u64,
    pub seed: u64,
    /// `cpu`, `cuda`, `cuda:N`.
    pub device: String,
    /// `auto` (bf16 autocast on CUDA, fp32 on CPU), `fp32` or `bf16`.
    pub precision: crate::train::precision::Precision,
    pub log_every: u64,
    pub checkpoint_every: u64,
    /// Reconstruction grid every N steps (0: only at the end).
    pub sample_every: u64,
    pub grid_images: usize,
    /// Step folders kept (0: all).
    pub keep_checkpoints: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecoderFtConfig {
    /// Mask ratio at the first stage-2 step, annealed linearly to 0 at the last (spec §5.4).
    pub mask_ratio_start: f64,
    /// Start from the stage-1 EMA weights (`true`) or its raw weights.
    pub from_ema: bool,
    /// The stage-1 run folder, one of its step folders, or an `AEModel` folder
    /// (`--from` sets it).
    pub from: Option<PathBuf>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            data: DataConfig::default(),
            model: ModelSection::default(),
            aux: vec![
                AuxConfig {
                    name: "hog".into(),
                    target: "hog".into(),
                    loss: AuxLoss::Mse,
                    weight: 1.0,
                },
                AuxConfig {
                    name: "dino".into(),
                    target: "dinov2".into(),
                    loss: AuxLoss::Cosine,
                    weight: 1.0,
                },
                AuxConfig {
                    name: "clip".into(),
                    target: "siglip".into(),
                    loss: AuxLoss::Cosine,
                    weight: 1.0,
                },
            ],
            optim: OptimConfig::default(),
            losses: LossConfig::default(),
            gan: GanConfig::default(),
            train: LoopConfig::default(),
            decoder_ft: DecoderFtConfig::default(),
            dist: DistConfig::default(),
        }
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            shards: PathBuf::new(),
            batch_size: 64,
            prefetch: 4,
            decode_threads: 0,
        }
    }
}

impl Default for ModelSection {
    fn default() -> Self {
        Self {
            image_size: 256,
            patch_size: 16,
            width: 768,
            enc_depth: 12,
            dec_depth: 12,
            enc_heads: 12,
            dec_heads: 12,
            mlp_ratio: 4,
            num_latent_tokens: 128,
            latent_dim: 32,
            decoder: "movq".into(),
            dec_cls_token: false,
            rope_theta: 10.0,
            layer_scale_init: 1e-5,
            mask_modeling: true,
            aux_width: 192,
            aux_depth: 3,
            aux_heads: 3,
            aux_mlp: 768,
        }
    }
}

impl ModelSection {
    /// The tokenizer this section describes.
    pub fn shape(&self) -> MaetokShape {
        let tower = |depth, heads| TowerShape {
            width: self.width,
            depth,
            heads,
            hidden: self.mlp_ratio * self.width,
            cls_token: true,
            layer_scale: true,
        };
        let movq = self.decoder == "movq";
        MaetokShape {
            patch: self.patch_size,
            grid: self.image_size / self.patch_size,
            num_latent: self.num_latent_tokens,
            latent_dim: self.latent_dim,
            encoder: tower(self.enc_depth, self.enc_heads),
            mask_token: self.mask_modeling,
            decoder: DecoderShape {
                tower: TowerShape {
                    cls_token: self.dec_cls_token,
                    // MoVQ blocks have no LayerScale; plain ones have timm's.
                    layer_scale: !movq,
                    ..tower(self.dec_depth, self.dec_heads)
                },
                movq,
                out_dim: 3 * self.patch_size * self.patch_size,
            },
            rope_theta: self.rope_theta,
            layer_scale_init: self.layer_scale_init,
        }
    }

    /// An auxiliary decoder predicting `out_dim` values per token (spec §4.1).
    pub fn aux_shape(&self, out_dim: i64) -> DecoderShape {
        let d = DecoderShape::aux(out_dim);
        DecoderShape {
            tower: TowerShape {
                width: self.aux_width,
                depth: self.aux_depth,
                heads: self.aux_heads,
                hidden: self.aux_mlp,
                ..d.tower
            },
            ..d
        }
    }
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            lr: 1e-4,
            lr_batch_ref: 256,
            min_lr_ratio: 0.1,
            warmup_steps: 10_000,
            warmup_lr_init: 1e-5,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 1e-4,
            grad_clip: 1.0,
            ema_decay: 0.9999,
        }
    }
}

impl Default for LoopConfig {
    fn default() -> Self {
        Self {
            steps: 500_000,
            seed: 0,
            device: "cpu".into(),
            precision: Default::default(),
            log_every: 50,
            checkpoint_every: 10_000,
            sample_every: 5_000,
            grid_images: 8,
            keep_checkpoints: 3,
        }
    }
}

impl Default for DecoderFtConfig {
    fn default() -> Self {
        Self {
            mask_ratio_start: 0.6,
            from_ema: false,
            from: None,
        }
    }
}

impl TrainConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::in_file(path, e))?;
        Self::parse(&text).map_err(|e| ConfigError::in_file(path, e))
    }

    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let c = Self::parse_unchecked(text)?;
        c.validate()?;
        Ok(c)
    }

    /// Parsed, with the values not checked against each other (e.g. a run folder's saved
    /// config, compared before the new one replaces it).
    pub fn parse_unchecked(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))
    }

    /// Checks the values against each other (names the key and what is allowed).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check().map_err(ConfigError::Invalid)
    }

    fn check(&self) -> Result<(), String> {
        super::validate::check(self)
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

    /// The schedule: lr scaled by the global batch over `lr_batch_ref`.
    pub fn schedule(&self, warmup: u64) -> Cosine {
        let o = &self.optim;
        let base = o.lr * self.data.batch_size as f64 / o.lr_batch_ref as f64;
        Cosine {
            base,
            min: base * o.min_lr_ratio,
            warmup,
            warmup_lr_init: o.warmup_lr_init,
            total: self.train.steps,
        }
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_paper_and_typos_are_refused() {
        let base = "[data]\nshards = \"s\"\n[losses]\nlpips_vgg = \"v\"\nlpips_heads = \"h\"\n\
                    [gan]\nbackbone = \"d\"\n";
        let c = TrainConfig::parse(base).unwrap();
        assert_eq!(c.model.shape(), MaetokShape::maetok_b_128(256));
        let s = TrainConfig {
            data: DataConfig {
                batch_size: 512,
                ..c.data.clone()
            },
            ..c.clone()
        }
        .schedule(10_000);
        assert_eq!((s.base, s.total), (2e-4, 500_000)); // spec §5.3: 1e-4 × 512/256
        assert!((s.min - 2e-5).abs() < 1e-18);
        let e = TrainConfig::parse(&format!("{base}[optim]\nlearning_rate = 1\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("learning_rate"), "{e}");
        let e = TrainConfig::parse(&format!("{base}[model]\ndecoder = \"cnn\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("model.decoder"), "{e}");
        let e = TrainConfig::parse("[data]\nshards = \"s\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("losses.lpips_vgg"), "{e}");
        assert_eq!(c.losses.perceptual_at(0), 1e-4);
        assert_eq!(c.losses.perceptual_at(9_999), 1.0);
        // The resolved config round-trips.
        assert_eq!(TrainConfig::parse(&c.to_toml()).unwrap(), c);
    }
}
