//! `config.json` of an `AEModel` (spec §2.8): parsed leniently (unknown keys ignored, missing
//! ones defaulted to the official config's values); structure is then taken from the
//! tensor keys (spec §2.7), not from these fields.

use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AeConfig {
    pub image_size: i64,
    pub base_image_size: i64,
    pub codebook_embed_dim: i64,
    pub num_latent_tokens: i64,
    pub enc_type: String,
    pub dec_type: String,
    pub encoder_model: String,
    pub decoder_model: String,
    pub enc_patch_size: i64,
    pub dec_patch_size: i64,
    pub to_pixel: String,
    pub use_ape: bool,
    pub use_rope: bool,
    pub rope_mixed: bool,
    pub rope_theta: f64,
    pub dec_cls_token: bool,
    pub enc_token_drop: f64,
    pub enc_token_drop_max: f64,
    pub vq_mean: Option<f64>,
    pub vq_std: Option<f64>,
    /// Not official fields (the official loader drops unknown keys): heads of the encoder /
    /// decoder when the timm model names do not imply them (tiny test models re-register the
    /// official names with other sizes). Official names imply 64-d heads.
    pub enc_num_heads: Option<i64>,
    pub dec_num_heads: Option<i64>,
}

impl Default for AeConfig {
    fn default() -> Self {
        Self {
            image_size: 256,
            base_image_size: 256,
            codebook_embed_dim: 32,
            num_latent_tokens: 128,
            enc_type: "vit".into(),
            dec_type: "vit".into(),
            encoder_model: "vit_base_patch14_dinov2.lvd142m".into(),
            decoder_model: "vit_base_patch14_dinov2_movqv2".into(),
            enc_patch_size: 16,
            dec_patch_size: 16,
            to_pixel: "linear".into(),
            use_ape: false,
            use_rope: true,
            rope_mixed: true,
            rope_theta: 10.0,
            dec_cls_token: false,
            enc_token_drop: 0.4,
            enc_token_drop_max: 0.6,
            vq_mean: None,
            vq_std: None,
            enc_num_heads: None,
            dec_num_heads: None,
        }
    }
}

impl AeConfig {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| format!("{}: not an AEModel config: {e}", path.display()))
    }

    /// Heads for a transformer `width` wide built from timm model `name`, unless `given`.
    pub fn heads(given: Option<i64>, name: &str, width: i64) -> i64 {
        if let Some(h) = given {
            return h;
        }
        if name.contains("tinytiny") {
            return 3;
        }
        (width / 64).max(1)
    }
}
