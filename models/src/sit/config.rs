//! A SiT checkpoint's `config.json`: the official `SiT` constructor's arguments as
//! `PyTorchModelHubMixin.save_pretrained` writes them (spec §7.1), so a folder saved by the
//! official code loads here and one saved here loads with the official `SiT.from_pretrained`.
//! Missing fields take the official constructor's defaults, as its loader does; unknown
//! fields (`z_dims`, `flash_attn`, …) are kept and written back.

use std::collections::BTreeMap;
use std::path::Path;

use crate::denoiser::ConfigFileError;

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SitConfig {
    /// The transport path the model was trained with (`linear` or `cosine`; the official
    /// default `edm` is a placeholder the code never reads).
    pub path_type: String,
    /// Tokens of the 1-D latent when `vae_1d` (128 for MAETok).
    pub input_size: i64,
    pub patch_size: i64,
    /// Latent channels (32 for MAETok); out = in.
    pub in_channels: i64,
    pub hidden_size: i64,
    /// The final layer's width; the official forward only runs when it equals `hidden_size`.
    pub decoder_hidden_size: i64,
    pub depth: i64,
    pub num_heads: i64,
    pub mlp_ratio: f64,
    /// Label dropout in training; > 0 adds the null class's row `num_classes` to the table.
    pub class_dropout_prob: f64,
    pub num_classes: i64,
    pub use_cfg: bool,
    /// Tokens in, tokens out (`x_embedder` a Linear): the only kind this port builds.
    pub vae_1d: bool,
    /// A block kwarg the official `SiTBlock` reads unconditionally: always written.
    pub qk_norm: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fused_attn: Option<bool>,
    pub license: String,
    pub repo_url: String,
    pub tags: Vec<String>,
    /// Fields this port does not read (`z_dims`, `flash_attn`, …), written back unchanged.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Default for SitConfig {
    /// The official constructor's defaults.
    fn default() -> Self {
        Self {
            path_type: "edm".into(),
            input_size: 32,
            patch_size: 2,
            in_channels: 4,
            hidden_size: 1152,
            decoder_hidden_size: 768,
            depth: 28,
            num_heads: 16,
            mlp_ratio: 4.0,
            class_dropout_prob: 0.1,
            num_classes: 1000,
            use_cfg: false,
            vae_1d: false,
            qk_norm: false,
            fused_attn: None,
            license: "apache-2.0".into(),
            repo_url: "https://github.com/Hhhhhhao/continuous_tokenizer".into(),
            tags: ["arxiv:2412.10958", "image-generation", "32 tokens", "SiT"]
                .map(String::from)
                .to_vec(),
            extra: BTreeMap::new(),
        }
    }
}

/// The named sizes (the official `SiT_models` table with patch 1, plus small ones for CPU
/// runs and tests): (width, depth, heads).
pub const PRESETS: &[(&str, i64, i64, i64)] = &[
    ("SiT-XL/1", 1152, 28, 16),
    ("SiT-L/1", 1024, 24, 16),
    ("SiT-B/1", 768, 12, 12),
    ("SiT-S/1", 384, 12, 6),
    // Not official: the demo's and the tests' sizes.
    ("SiT-T/1", 128, 4, 4),
    ("SiT-mini/1", 32, 2, 2),
];

impl SitConfig {
    /// A named preset on `input_size` tokens × `in_channels` with `num_classes` classes,
    /// written as `train_sit.py` builds it (linear path, CFG dropout 0.1, SDPA attention).
    pub fn preset(name: &str, input_size: i64, in_channels: i64, num_classes: i64) -> Option<Self> {
        let &(_, width, depth, heads) = PRESETS.iter().find(|p| p.0 == name)?;
        Some(Self {
            path_type: "linear".into(),
            input_size,
            patch_size: 1,
            in_channels,
            hidden_size: width,
            decoder_hidden_size: width,
            depth,
            num_heads: heads,
            num_classes,
            use_cfg: true,
            vae_1d: true,
            fused_attn: Some(true),
            ..Self::default()
        })
    }

    pub fn load(path: &Path) -> Result<Self, ConfigFileError> {
        let text = ConfigFileError::read(path)?;
        let cfg: Self =
            serde_json::from_str(&text).map_err(|e| ConfigFileError::new(path, e.to_string()))?;
        cfg.validate().map_err(|m| ConfigFileError::new(path, m))?;
        Ok(cfg)
    }

    /// What this port builds: a 1-D SiT (patch size 1 over tokens) whose shapes divide.
    pub fn validate(&self) -> Result<(), String> {
        // With `vae_1d` the official model sets the patch size to 1 whatever the field says.
        if !self.vae_1d {
            return Err(format!(
                "`vae_1d` = {}: only the 1-D SiT on latent tokens (`vae_1d` = true, patch size 1) \
                 is built here; 2-D patchified SiTs are not",
                self.vae_1d
            ));
        }
        let positive = [
            ("input_size", self.input_size),
            ("in_channels", self.in_channels),
            ("hidden_size", self.hidden_size),
            ("depth", self.depth),
            ("num_heads", self.num_heads),
            ("num_classes", self.num_classes),
        ];
        if let Some((k, v)) = positive.iter().find(|(_, v)| *v <= 0) {
            return Err(format!("`{k}` = {v}: must be positive"));
        }
        if self.hidden_size % self.num_heads != 0 || self.hidden_size % 2 != 0 {
            return Err(format!(
                "`hidden_size` = {} must be even and divisible by `num_heads` = {}",
                self.hidden_size, self.num_heads
            ));
        }
        if self.decoder_hidden_size != self.hidden_size {
            return Err(format!(
                "`decoder_hidden_size` = {} differs from `hidden_size` = {}: the official \
                 forward cannot run such a model",
                self.decoder_hidden_size, self.hidden_size
            ));
        }
        if !(0.0..1.0).contains(&self.class_dropout_prob) || self.mlp_ratio <= 0.0 {
            return Err(format!(
                "`class_dropout_prob` = {} must be in [0, 1) and `mlp_ratio` = {} positive",
                self.class_dropout_prob, self.mlp_ratio
            ));
        }
        Ok(())
    }

    /// Rows of the label table: the classes, plus the null class when label dropout is on.
    pub fn label_rows(&self) -> i64 {
        self.num_classes + i64::from(self.class_dropout_prob > 0.0)
    }

    /// The label guidance's "no class" (`num_classes`): only defined with the null row.
    pub fn null_label(&self) -> Option<i64> {
        (self.class_dropout_prob > 0.0).then_some(self.num_classes)
    }

    /// `int(hidden_size * mlp_ratio)`, as the official block computes it.
    pub fn mlp_hidden(&self) -> i64 {
        (self.hidden_size as f64 * self.mlp_ratio) as i64
    }

    /// Values in the state dict, the fixed `pos_embed` included (spec §10b: SiT-XL/1 on
    /// 128 × 32 has 675,000,608).
    pub fn num_values(&self) -> i64 {
        let (c, t, i, h) = (
            self.hidden_size,
            self.input_size,
            self.in_channels,
            self.mlp_hidden(),
        );
        let linear = |inp: i64, out: i64| inp * out + out;
        let qk_norm = if self.qk_norm {
            4 * (c / self.num_heads)
        } else {
            0
        };
        let block = linear(c, 3 * c)
            + linear(c, c)
            + linear(c, h)
            + linear(h, c)
            + linear(c, 6 * c)
            + qk_norm;
        linear(i, c)
            + t * c
            + linear(crate::sit::embed::FREQUENCY_DIM, c)
            + linear(c, c)
            + self.label_rows() * c
            + self.depth * block
            + linear(c, 2 * c)
            + linear(c, i)
    }

    /// FLOPs of one forward of one sample, a multiply-add counted as 2 (spec §7.1: 116.7 G
    /// for SiT-XL/1 at 128 tokens): the token-wise matmuls, attention's two products, and
    /// the per-sample conditioning layers.
    pub fn flops_per_forward(&self) -> f64 {
        let (c, t, i, h) = (
            self.hidden_size as f64,
            self.input_size as f64,
            self.in_channels as f64,
            self.mlp_hidden() as f64,
        );
        let block =
            2.0 * t * (c * 3.0 * c + c * c + 2.0 * c * h) + 4.0 * t * t * c + 2.0 * c * 6.0 * c;
        let embed = 2.0 * t * i * c
            + 2.0 * (crate::sit::embed::FREQUENCY_DIM as f64 * c + c * c)
            + 2.0 * c * 2.0 * c
            + 2.0 * t * c * i;
        self.depth as f64 * block + embed
    }

    /// Write `dir/config.json` as `save_pretrained` does (sorted keys, 2-space indent),
    /// atomically.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        crate::denoiser::save_config_json(self, dir)
    }
}
