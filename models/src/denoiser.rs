//! The velocity networks the diffusion loop trains and samples, behind one type: SiT
//! (spec §7.1) and LightningDiT (spec §7.5). Both take x (B, T, C) at t ∈ [0, 1] with
//! **t = 1 noise** and labels (B,), and return the velocity dx/dt of the linear path
//! x_t = (1 − t)·x0 + t·ε; LightningDiT's own t = 0 noise convention stays inside it
//! (`LightningDit::forward`). A checkpoint folder is `model.safetensors` + `config.json`; a
//! config with `"architecture": "LightningDiT"` is a LightningDiT, any other a SiT.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use maetok_nn::{Vars, WeightError, Weights};
use serde::Serialize;
use serde_json::Value;
use tch::{Device, Kind, Tensor};

use crate::lightningdit::{LightningDit, LightningDitConfig};
use crate::sit::{Sit, SitConfig};

/// A `config.json` that cannot be read or describes a model this port does not build.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct ConfigFileError {
    pub path: PathBuf,
    pub message: String,
}

impl ConfigFileError {
    pub fn new(path: &Path, message: impl Into<String>) -> Self {
        Self {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    /// The file's text, or an error saying what a checkpoint folder holds.
    pub fn read(path: &Path) -> Result<String, Self> {
        std::fs::read_to_string(path).map_err(|e| {
            Self::new(
                path,
                format!(
                    "{e} (a diffusion checkpoint folder holds `model.safetensors` and \
                     `config.json`)"
                ),
            )
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DenoiserError {
    #[error(transparent)]
    Weights(#[from] WeightError),
    #[error(transparent)]
    Config(#[from] ConfigFileError),
    #[error("{path}: keys this {model} does not have: {keys:?}")]
    Unexpected {
        path: String,
        model: &'static str,
        keys: Vec<String>,
    },
}

/// Write `dir/config.json` as `save_pretrained` does (sorted keys, 2-space indent),
/// atomically.
pub fn save_config_json(config: &impl Serialize, dir: &Path) -> std::io::Result<()> {
    let value = serde_json::to_value(config).map_err(std::io::Error::other)?;
    let text = serde_json::to_vec_pretty(&sorted(value)).map_err(std::io::Error::other)?;
    maetok_nn::atomic::write(&dir.join("config.json"), &text)
}

/// `serde_json`'s map keeps insertion order only with its `preserve_order` feature; sort
/// explicitly so the file matches Python's `sort_keys=True` either way.
fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let ordered: BTreeMap<String, Value> =
                m.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            Value::Object(ordered.into_iter().collect())
        }
        other => other,
    }
}

/// Write `named` (with some tensors' values replaced, e.g. the EMA weights) as
/// `dir/model.safetensors` (fp32) and `config` as `dir/config.json`, each atomically.
pub(crate) fn save_folder(
    vars: &Vars,
    replace: &HashMap<&str, &Tensor>,
    dir: &Path,
    config: impl FnOnce(&Path) -> std::io::Result<()>,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let named: Vec<(String, Tensor)> = vars
        .named()
        .into_iter()
        .map(|(k, t)| {
            let t = replace.get(k.as_str()).map_or(t, |r| r.shallow_clone());
            (k, t)
        })
        .collect();
    maetok_nn::weights::write_safetensors_atomic(&named, &dir.join("model.safetensors"))?;
    config(dir)
}

#[derive(Debug, Clone, PartialEq)]
pub enum DenoiserConfig {
    Sit(SitConfig),
    LightningDit(LightningDitConfig),
}

impl DenoiserConfig {
    /// `dir/config.json`, as whichever model it describes.
    pub fn load(path: &Path) -> Result<Self, ConfigFileError> {
        let text = ConfigFileError::read(path)?;
        let v: Value =
            serde_json::from_str(&text).map_err(|e| ConfigFileError::new(path, e.to_string()))?;
        let lightning = v.get("architecture").and_then(Value::as_str)
            == Some(crate::lightningdit::config::ARCHITECTURE);
        Ok(if lightning {
            Self::LightningDit(LightningDitConfig::load(path)?)
        } else {
            Self::Sit(SitConfig::load(path)?)
        })
    }

    /// "SiT" or "LightningDiT".
    pub fn family(&self) -> &'static str {
        match self {
            Self::Sit(_) => "SiT",
            Self::LightningDit(_) => "LightningDiT",
        }
    }

    /// (tokens, channels) of the latents it runs on.
    pub fn latent_shape(&self) -> (i64, i64) {
        match self {
            Self::Sit(c) => (c.input_size, c.in_channels),
            Self::LightningDit(c) => (c.input_size, c.in_channels),
        }
    }

    pub fn num_classes(&self) -> i64 {
        match self {
            Self::Sit(c) => c.num_classes,
            Self::LightningDit(c) => c.num_classes,
        }
    }

    /// The label guidance's "no class" (`num_classes`): only defined with the null row.
    pub fn null_label(&self) -> Option<i64> {
        match self {
            Self::Sit(c) => c.null_label(),
            Self::LightningDit(c) => c.null_label(),
        }
    }

    /// The transport path it was trained with, as written in its config.
    pub fn path_type(&self) -> &str {
        match self {
            Self::Sit(c) => &c.path_type,
            Self::LightningDit(c) => &c.path_type,
        }
    }

    pub fn num_values(&self) -> i64 {
        match self {
            Self::Sit(c) => c.num_values(),
            Self::LightningDit(c) => c.num_values(),
        }
    }

    pub fn flops_per_forward(&self) -> f64 {
        match self {
            Self::Sit(c) => c.flops_per_forward(),
            Self::LightningDit(c) => c.flops_per_forward(),
        }
    }
}

/// A SiT or a LightningDiT; see the module docs.
pub enum Denoiser {
    Sit(Sit),
    LightningDit(LightningDit),
}

impl Denoiser {
    /// A freshly initialised model (its official `initialize_weights`), on the CPU.
    pub fn fresh(config: DenoiserConfig) -> Result<Self, DenoiserError> {
        Ok(match config {
            DenoiserConfig::Sit(c) => Self::Sit(Sit::fresh(c)?),
            DenoiserConfig::LightningDit(c) => Self::LightningDit(LightningDit::fresh(c)?),
        })
    }

    /// Load `dir/model.safetensors` with `dir/config.json`, strictly.
    pub fn load(dir: &Path) -> Result<Self, DenoiserError> {
        let config = DenoiserConfig::load(&dir.join("config.json"))?;
        let w = Weights::load(&dir.join("model.safetensors"), HINT)?;
        Self::from_weights(w, config)
    }

    /// The model held by `w` (missing, mis-shaped and unexpected keys are errors).
    pub fn from_weights(w: Weights, config: DenoiserConfig) -> Result<Self, DenoiserError> {
        Ok(match config {
            DenoiserConfig::Sit(c) => Self::Sit(Sit::from_weights(w, c)?),
            DenoiserConfig::LightningDit(c) => {
                Self::LightningDit(LightningDit::from_weights(w, c)?)
            }
        })
    }

    pub fn config(&self) -> DenoiserConfig {
        match self {
            Self::Sit(m) => DenoiserConfig::Sit(m.config.clone()),
            Self::LightningDit(m) => DenoiserConfig::LightningDit(m.config.clone()),
        }
    }

    /// Every tensor under its official name.
    pub fn vars(&self) -> &Vars {
        match self {
            Self::Sit(m) => &m.vars,
            Self::LightningDit(m) => &m.vars,
        }
    }

    /// Move/cast every tensor in place.
    pub fn to(&mut self, device: Device, kind: Kind) {
        match self {
            Self::Sit(m) => m.to(device, kind),
            Self::LightningDit(m) => m.to(device, kind),
        }
    }

    pub fn device(&self) -> Device {
        match self {
            Self::Sit(m) => m.device(),
            Self::LightningDit(m) => m.device(),
        }
    }

    /// x (B, T, C) at t (B,) (t = 1 noise), labels y (B,) → velocity (B, T, C).
    pub fn forward(&self, x: &Tensor, t: &Tensor, y: &Tensor) -> Tensor {
        match self {
            Self::Sit(m) => m.forward(x, t, y),
            Self::LightningDit(m) => m.forward(x, t, y),
        }
    }

    /// Write the checkpoint folder `dir`, with some tensors' values replaced (the EMA
    /// weights, by name): a folder that loads as a model of its own.
    pub fn save_with(&self, dir: &Path, replace: &HashMap<&str, &Tensor>) -> std::io::Result<()> {
        match self {
            Self::Sit(m) => m.save_with(dir, replace),
            Self::LightningDit(m) => m.save_with(dir, replace),
        }
    }

    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        self.save_with(dir, &HashMap::new())
    }
}

const HINT: &str = "A diffusion checkpoint folder holds `model.safetensors` and `config.json` \
                    (as the official `SiT.save_pretrained` writes them, `scripts/convert_sit.py` \
                    from a training checkpoint, or a `maetok train sit` step folder)";
