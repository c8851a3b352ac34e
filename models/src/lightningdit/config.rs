//! A LightningDiT checkpoint's `config.json` (spec §7.5): the official `LightningDiT`
//! constructor's arguments (`hustvl/LightningDiT`, `models/lightningdit.py`) plus what the
//! 1-D adaptation to MAETok's tokens adds: `architecture` = `"LightningDiT"` (how a folder
//! says it is not a SiT), `vae_1d`, `rope_theta` and `path_type`. The official code saves
//! `.pt` dictionaries without a config; this file is ours, written with sorted keys like
//! the SiT one. Unknown fields are kept and written back.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::denoiser::ConfigFileError;

/// The value of `architecture` that marks a LightningDiT folder.
pub const ARCHITECTURE: &str = "LightningDiT";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LightningDitConfig {
    pub architecture: String,
    /// Tokens of the 1-D latent (128 for MAETok).
    pub input_size: i64,
    pub patch_size: i64,
    pub in_channels: i64,
    pub hidden_size: i64,
    pub depth: i64,
    pub num_heads: i64,
    pub mlp_ratio: f64,
    pub class_dropout_prob: f64,
    pub num_classes: i64,
    /// Doubles the output channels in the official code; not built here.
    pub learn_sigma: bool,
    /// qk-norm over each head (RMSNorm with `use_rmsnorm`, else LayerNorm).
    pub use_qknorm: bool,
    /// SwiGLU MLP (`w12`, `w3`) of hidden `int(2/3 · mlp_ratio · width)`, else tanh GELU.
    pub use_swiglu: bool,
    /// Rotary embedding of q and k over the token index (`feat_rope.freqs_cos/sin`).
    pub use_rope: bool,
    /// RMSNorm (with a gain) for the block and final norms, else affine-free LayerNorm.
    pub use_rmsnorm: bool,
    /// adaLN without shifts (4 chunks per block).
    pub wo_shift: bool,
    /// Activation checkpointing in the official trainer; a memory knob, kept and unused.
    pub use_checkpoint: bool,
    /// Tokens in, tokens out (a Linear token embedder, 1-D positions and RoPE).
    pub vae_1d: bool,
    /// RoPE base for a fresh model (a loaded one reads its tables from the file).
    pub rope_theta: f64,
    /// The transport path the model was trained with (`linear`).
    pub path_type: String,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Default for LightningDitConfig {
    /// The official constructor's defaults, made 1-D.
    fn default() -> Self {
        Self {
            architecture: ARCHITECTURE.into(),
            input_size: 32,
            patch_size: 1,
            in_channels: 32,
            hidden_size: 1152,
            depth: 28,
            num_heads: 16,
            mlp_ratio: 4.0,
            class_dropout_prob: 0.1,
            num_classes: 1000,
            learn_sigma: false,
            use_qknorm: false,
            use_swiglu: false,
            use_rope: false,
            use_rmsnorm: false,
            wo_shift: false,
            use_checkpoint: false,
            vae_1d: true,
            rope_theta: 10000.0,
            path_type: "linear".into(),
            extra: BTreeMap::new(),
        }
    }
}

/// The official `LightningDiT_models` sizes with patch 1, plus small ones for CPU runs and
/// tests: (name, width, depth, heads).
pub const PRESETS: &[(&str, i64, i64, i64)] = &[
    ("LightningDiT-XL/1", 1152, 28, 16),
    ("LightningDiT-B/1", 768, 12, 12),
    ("LightningDiT-1p0B/1", 1536, 24, 24),
    // Not official: the tests' and a CPU run's sizes.
    ("LightningDiT-T/1", 128, 4, 4),
    ("LightningDiT-mini/1", 32, 2, 2),
];

impl LightningDitConfig {
    /// A named preset with the flags of the released LightningDiT-XL config
    /// (`configs/lightningdit_xl_vavae_f16d32.yaml`: SwiGLU, RoPE, RMSNorm; no qk-norm, with
    /// shifts) on `input_size` tokens × `in_channels`.
    pub fn preset(name: &str, input_size: i64, in_channels: i64, num_classes: i64) -> Option<Self> {
        let &(_, width, depth, heads) = PRESETS.iter().find(|p| p.0 == name)?;
        Some(Self {
            input_size,
            in_channels,
            hidden_size: width,
            depth,
            num_heads: heads,
            num_classes,
            use_swiglu: true,
            use_rope: true,
            use_rmsnorm: true,
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

    /// What this port builds: a 1-D LightningDiT whose shapes divide.
    pub fn validate(&self) -> Result<(), String> {
        if self.architecture != ARCHITECTURE {
            return Err(format!(
                "`architecture` = {:?}: a LightningDiT config says {ARCHITECTURE:?}",
                self.architecture
            ));
        }
        if !self.vae_1d || self.patch_size != 1 {
            return Err(format!(
                "`vae_1d` = {}, `patch_size` = {}: only the 1-D LightningDiT on latent tokens \
                 (patch size 1) is built here",
                self.vae_1d, self.patch_size
            ));
        }
        if self.learn_sigma {
            return Err("`learn_sigma` = true: a velocity model has no variance output".into());
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
        if self.hidden_size % self.num_heads != 0 || self.head_dim() % 2 != 0 {
            return Err(format!(
                "`hidden_size` = {} must split into `num_heads` = {} heads of even width \
                 (RoPE turns pairs)",
                self.hidden_size, self.num_heads
            ));
        }
        if !(0.0..1.0).contains(&self.class_dropout_prob) || self.mlp_ratio <= 0.0 {
            return Err(format!(
                "`class_dropout_prob` = {} must be in [0, 1) and `mlp_ratio` = {} positive",
                self.class_dropout_prob, self.mlp_ratio
            ));
        }
        if !(self.rope_theta > 1.0 && self.rope_theta.is_finite()) {
            return Err(format!("`rope_theta` = {}: must be > 1", self.rope_theta));
        }
        Ok(())
    }

    pub fn head_dim(&self) -> i64 {
        self.hidden_size / self.num_heads
    }

    /// Rows of the label table: the classes, plus the null class when label dropout is on.
    pub fn label_rows(&self) -> i64 {
        self.num_classes + i64::from(self.class_dropout_prob > 0.0)
    }

    pub fn null_label(&self) -> Option<i64> {
        (self.class_dropout_prob > 0.0).then_some(self.num_classes)
    }

    /// The MLP's hidden width as the official block computes it: `int(width · mlp_ratio)`,
    /// and for SwiGLU `int(2/3 · that)` (3072 for XL).
    pub fn mlp_hidden(&self) -> i64 {
        let h = (self.hidden_size as f64 * self.mlp_ratio) as i64;
        if self.use_swiglu {
            (2.0 / 3.0 * h as f64) as i64
        } else {
            h
        }
    }

    /// adaLN chunks per block: 6, or 4 without shifts.
    pub fn block_chunks(&self) -> i64 {
        if self.wo_shift {
            4
        } else {
            6
        }
    }

    /// Values in the state dict, the fixed `pos_embed` and RoPE tables included.
    pub fn num_values(&self) -> i64 {
        let (c, t, i, h, d) = (
            self.hidden_size,
            self.input_size,
            self.in_channels,
            self.mlp_hidden(),
            self.head_dim(),
        );
        let linear = |inp: i64, out: i64| inp * out + out;
        let rms = |w: i64| if self.use_rmsnorm { w } else { 0 };
        let qk = if !self.use_qknorm {
            0
        } else if self.use_rmsnorm {
            2 * d
        } else {
            4 * d
        };
        let mlp = if self.use_swiglu {
            linear(c, 2 * h) + linear(h, c)
        } else {
            linear(c, h) + linear(h, c)
        };
        let block = linear(c, 3 * c)
            + linear(c, c)
            + qk
            + mlp
            + 2 * rms(c)
            + linear(c, self.block_chunks() * c);
        let rope = if self.use_rope { 2 * t * d } else { 0 };
        linear(i, c)
            + t * c
            + rope
            + linear(crate::sit::embed::FREQUENCY_DIM, c)
            + linear(c, c)
            + self.label_rows() * c
            + self.depth * block
            + rms(c)
            + linear(c, 2 * c)
            + linear(c, i)
    }

    /// FLOPs of one forward of one sample, a multiply-add counted as 2 (as
    /// `SitConfig::flops_per_forward`): SwiGLU's fused first layer is twice as wide.
    pub fn flops_per_forward(&self) -> f64 {
        let (c, t, i, h) = (
            self.hidden_size as f64,
            self.input_size as f64,
            self.in_channels as f64,
            self.mlp_hidden() as f64,
        );
        let mlp = if self.use_swiglu {
            3.0 * c * h
        } else {
            2.0 * c * h
        };
        let chunks = self.block_chunks() as f64;
        let block = 2.0 * t * (c * 3.0 * c + c * c + mlp) + 4.0 * t * t * c + 2.0 * c * chunks * c;
        let embed = 2.0 * t * i * c
            + 2.0 * (crate::sit::embed::FREQUENCY_DIM as f64 * c + c * c)
            + 2.0 * c * 2.0 * c
            + 2.0 * t * c * i;
        self.depth as f64 * block + embed
    }

    /// Write `dir/config.json` (sorted keys, 2-space indent), atomically.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        crate::denoiser::save_config_json(self, dir)
    }
}
