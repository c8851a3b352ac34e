//! `config.json` of an `AEModel` (spec §2.8): parsed leniently (unknown keys ignored, missing
//! ones defaulted to the official config's values); structure is then taken from the
//! tensor keys (spec §2.7), not from these fields.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::MaetokShape;

/// A `config.json` that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct AeConfigError {
    pub path: std::path::PathBuf,
    pub message: String,
}

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

/// Every field of the official `ModelArgs` dataclass with the official config's values
/// (spec §2.8), plus the latent statistics `vq_mean` / `vq_std` the official SiT scripts
/// read from it (spec §6; 0 and 1 until `maetok encode --write-stats` measures them). The official `from_pretrained` fills fields missing from `config.json` with
/// the dataclass defaults, some of which differ (e.g. `use_rope = false`, `enc_type = "cnn"`),
/// so an exported `config.json` writes them all.
const OFFICIAL_FIELDS: &str = r#"{"aux_clip_dec": true, "aux_dec_cls_token": true, "aux_dec_model": "vit_tinytiny_patch14_dinov2_movq2", "aux_dino_dec": true, "aux_hog_dec": true, "aux_loss_mask": true, "aux_supcls_dec": true, "base_image_size": 256, "codebook_embed_dim": 32, "codebook_l2_norm": true, "codebook_show_usage": true, "codebook_size": 16384, "commit_loss_beta": 0.25, "dec_cls_token": false, "dec_drop_path_rate": 0.05, "dec_patch_size": 16, "dec_pretrained": false, "dec_tuning_method": "full", "dec_type": "vit", "decoder_ch_mult": [1, 1, 2, 2, 4], "decoder_model": "vit_base_patch14_dinov2_movqv2", "dropout_p": 0.0, "enc_drop_path_rate": 0.0, "enc_patch_size": 16, "enc_pretrained": false, "enc_token_drop": 0.4, "enc_token_drop_max": 0.6, "enc_tuning_method": "full", "enc_type": "vit", "encoder_ch_mult": [1, 1, 2, 2, 4], "encoder_model": "vit_base_patch14_dinov2.lvd142m", "entropy_loss_ratio": 0.0, "image_size": 256, "kl_loss_weight": 1e-06, "num_codebooks": 1, "num_latent_tokens": 128, "repa": false, "repa_align": "global", "repa_loss_weight": 0.1, "repa_model": "vit_base_patch16_224", "repa_patch_size": 16, "repa_proj_dim": 2048, "rope_mixed": true, "rope_theta": 10.0, "tau": 0.1, "to_pixel": "linear", "use_ape": false, "use_rope": true, "vq_loss_ratio": 1.0, "vq_mean": 0.0, "vq_std": 1.0, "z_channels": 256}"#;

impl AeConfig {
    /// `config.json` for the released layout: the official fields, overridden by this
    /// config's values (unset optional ones left out).
    pub fn to_official_json(&self) -> serde_json::Value {
        let mut out: serde_json::Value =
            serde_json::from_str(OFFICIAL_FIELDS).expect("template is JSON");
        let ours = serde_json::to_value(self).expect("config serialises");
        for (k, v) in ours.as_object().expect("object") {
            if !v.is_null() {
                out[k] = v.clone();
            }
        }
        out
    }

    pub fn load(path: &Path) -> Result<Self, AeConfigError> {
        let err = |message: String| AeConfigError {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| err(format!("not JSON: {e}")))?;
        // serde would read a JSON array positionally into the fields; an AEModel config is
        // an object.
        if !v.is_object() {
            return Err(err(format!(
                "not an AEModel config: expected a JSON object of `ModelArgs` fields, found {}",
                match v {
                    serde_json::Value::Array(_) => "an array",
                    serde_json::Value::String(_) => "a string",
                    serde_json::Value::Number(_) => "a number",
                    serde_json::Value::Bool(_) => "a boolean",
                    _ => "null",
                }
            )));
        }
        let c: Self =
            serde_json::from_value(v).map_err(|e| err(format!("not an AEModel config: {e}")))?;
        c.check().map_err(err)?;
        Ok(c)
    }

    /// The fields the architecture reads, checked (names the field and what is allowed).
    pub fn check(&self) -> Result<(), String> {
        for (k, v) in [
            ("image_size", self.image_size),
            ("codebook_embed_dim", self.codebook_embed_dim),
            ("num_latent_tokens", self.num_latent_tokens),
            ("enc_patch_size", self.enc_patch_size),
            ("dec_patch_size", self.dec_patch_size),
        ] {
            if v < 1 {
                return Err(format!("`{k}` = {v}: must be at least 1"));
            }
        }
        for (k, v) in [
            ("enc_num_heads", self.enc_num_heads),
            ("dec_num_heads", self.dec_num_heads),
        ] {
            if let Some(h) = v.filter(|&h| h < 1) {
                return Err(format!("`{k}` = {h}: must be at least 1"));
            }
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            return Err(format!(
                "`rope_theta` = {}: must be a finite number above 0",
                self.rope_theta
            ));
        }
        if let Some((k, v)) = [("vq_mean", self.vq_mean), ("vq_std", self.vq_std)]
            .into_iter()
            .find(|(_, v)| v.is_some_and(|x| !x.is_finite()))
        {
            return Err(format!("`{k}` = {v:?}: must be finite"));
        }
        if self.vq_std.is_some_and(|s| s <= 0.0) {
            return Err(format!("`vq_std` = {:?}: must be above 0", self.vq_std));
        }
        Ok(())
    }

    /// Write `dir/config.json` in the released layout ([`AeConfig::to_official_json`]),
    /// atomically.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let text =
            serde_json::to_vec_pretty(&self.to_official_json()).map_err(std::io::Error::other)?;
        maetok_nn::atomic::write(&dir.join("config.json"), &text)
    }

    /// The released `config.json` of a model of shape `s`.
    pub fn from_shape(s: &MaetokShape) -> Self {
        let d = Self::default();
        let (enc, dec) = (&s.encoder, &s.decoder.tower);
        Self {
            image_size: s.image_size(),
            base_image_size: s.image_size(),
            codebook_embed_dim: s.latent_dim,
            num_latent_tokens: s.num_latent,
            enc_patch_size: s.patch,
            dec_patch_size: s.patch,
            decoder_model: if s.decoder.movq {
                d.decoder_model.clone()
            } else {
                "vit_base_patch14_dinov2.lvd142m".into()
            },
            dec_cls_token: dec.cls_token,
            rope_theta: s.rope_theta,
            // The released convention: a model has `encoder.mask_token` iff it was built
            // with `enc_token_drop > 0` (spec §2.7).
            enc_token_drop: if s.mask_token { d.enc_token_drop } else { 0.0 },
            enc_token_drop_max: if s.mask_token {
                d.enc_token_drop_max
            } else {
                0.0
            },
            // Official names imply 64-wide heads; write ours when they differ.
            enc_num_heads: (enc.width / enc.heads != 64).then_some(enc.heads),
            dec_num_heads: (dec.width / dec.heads != 64).then_some(dec.heads),
            ..d
        }
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
