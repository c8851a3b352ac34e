//! The optional model config (`--model-config`, or the `config.json` next to the weights):
//! HF transformers configs (`num_attention_heads`, `hidden_act`, `layer_norm_eps`, for
//! CLIP/SigLIP possibly under `vision_config`), timm hub configs (`model_args`), OpenCLIP's
//! `open_clip_config.json` (`model_cfg.vision_cfg` with `width`/`head_width`, and
//! `model_cfg.quick_gelu`, absent = GELU as in open_clip), or a plain
//! `{"num_heads": …, "act": …, "eps": …}`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use maetok_nn::Activation;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelConfig {
    pub source: Option<PathBuf>,
    pub num_heads: Option<i64>,
    pub act: Option<Activation>,
    pub eps: Option<f64>,
    pub raw: Value,
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ModelConfigError {
    pub path: PathBuf,
    pub message: String,
}

impl ModelConfig {
    pub fn load(path: &Path) -> Result<Self, ModelConfigError> {
        let err = |message: String| ModelConfigError {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let raw: Value = serde_json::from_str(&text).map_err(|e| err(format!("not JSON: {e}")))?;
        let mut cfg = Self::from_value(raw).map_err(err)?;
        cfg.source = Some(path.to_path_buf());
        Ok(cfg)
    }

    /// The fields read from a parsed file; errors gain the path in `load`.
    fn from_value(raw: Value) -> Result<Self, String> {
        let open_clip = raw.get("model_cfg");
        let scopes: Vec<&Value> = [
            raw.get("vision_config"),
            raw.get("model_args"),
            open_clip.and_then(|m| m.get("vision_cfg")),
            Some(&raw),
        ]
        .into_iter()
        .flatten()
        .collect();
        let find = |keys: &[&str]| -> Option<&Value> {
            scopes
                .iter()
                .find_map(|s| keys.iter().find_map(|k| s.get(*k)))
        };
        let num_heads = match find(&["num_attention_heads", "num_heads", "heads"]) {
            Some(v) => Some(
                v.as_i64()
                    .filter(|h| *h > 0)
                    .ok_or("`num_heads` must be a positive integer")?,
            ),
            None => None,
        };
        // OpenCLIP: heads = width / head_width.
        let num_heads = match (num_heads, find(&["width"]), find(&["head_width"])) {
            (None, Some(w), Some(hw)) => match (w.as_i64(), hw.as_i64()) {
                (Some(w), Some(hw)) if hw > 0 && w % hw == 0 => Some(w / hw),
                _ => return Err("`width` must be a multiple of `head_width`".into()),
            },
            (h, _, _) => h,
        };
        let act = match find(&["hidden_act", "act_layer", "act"]) {
            Some(v) => {
                let name = v.as_str().ok_or("the activation must be a string")?;
                Some(Activation::parse(name).ok_or_else(|| {
                    format!("unknown activation `{name}` (gelu, gelu_tanh, gelu_pytorch_tanh, quick_gelu, swiglu)")
                })?)
            }
            None => open_clip.map(|m| {
                if m.get("quick_gelu").and_then(Value::as_bool) == Some(true) {
                    Activation::QuickGelu
                } else {
                    Activation::Gelu
                }
            }),
        };
        // HF DINOv2-G: `use_swiglu_ffn` (the shapes say so too).
        let act = if find(&["use_swiglu_ffn"]).and_then(Value::as_bool) == Some(true) {
            Some(Activation::SwiGlu)
        } else {
            act
        };
        let eps = match find(&["layer_norm_eps", "eps"]) {
            Some(v) => Some(
                v.as_f64()
                    .filter(|e| *e > 0.0)
                    .ok_or("`layer_norm_eps` must be a positive number")?,
            ),
            None => None,
        };
        Ok(Self {
            source: None,
            num_heads,
            act,
            eps,
            raw,
        })
    }
}
