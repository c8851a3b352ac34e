//! `AEModel` (spec §2): encoder → `quant_conv` → latent z (B, L, C_z) → decoder. Loads the
//! released layout (`model.safetensors` + `config.json` in one folder).

use std::path::Path;

use maetok_teachers::nn::Linear;
use maetok_teachers::nn::{load, save};
use maetok_teachers::weights::{WeightError, Weights};
use tch::Tensor;

use super::decoder::Decoder;
use super::encoder::Encoder;
use super::AeConfig;

const HINT: &str = "An MAETok checkpoint folder holds `model.safetensors` and `config.json` \
                    (e.g. the HF repo `MAETok/maetok-b-128`)";

/// `(B, H, W, 3)` uint8 images → the model's input: `(B, 3, H, W)` f32 in [-1, 1]
/// (`x / 127.5 − 1`, the reference's `Normalize(0.5, 0.5)` of `x / 255`).
pub fn images_to_input(images: &Tensor) -> Tensor {
    images.permute([0, 3, 1, 2]).to_kind(tch::Kind::Float) / 127.5 - 1.0
}

pub struct AeModel {
    pub config: AeConfig,
    pub encoder: Encoder,
    pub quant_conv: Linear,
    pub decoder: Decoder,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Weights(#[from] WeightError),
    #[error(transparent)]
    Config(#[from] crate::error::ConfigError),
}

/// Training-time modules a checkpoint may carry that inference ignores (spec §2.7).
const IGNORED: &[&str] = &[
    "repa_model.",
    "projection.",
    "clip_model.",
    "decoder_hog.",
    "decoder_dino.",
    "decoder_clip.",
    "post_quant_conv_hog.",
    "post_quant_conv_dino.",
    "post_quant_conv_clip.",
    "to_pixel_hog.",
    "to_pixel_dino.",
    "to_pixel_clip.",
    "hog_generator.",
];

impl AeModel {
    /// Load `dir/model.safetensors` with `dir/config.json`.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let config = AeConfig::load(&dir.join("config.json")).map_err(ModelError::Config)?;
        Self::load_with_config(dir, config)
    }

    /// Load `dir/model.safetensors` with an already parsed (possibly amended) config.
    pub fn load_with_config(dir: &Path, config: AeConfig) -> Result<Self, ModelError> {
        let mut w = Weights::load(&dir.join("model.safetensors"), HINT)?;
        for p in IGNORED {
            w.drop_prefix(p);
        }
        Self::from_weights(&mut w, config)
    }

    pub fn from_weights(w: &mut Weights, config: AeConfig) -> Result<Self, ModelError> {
        let encoder = tch::no_grad(|| Encoder::from_weights(w, &config))?;
        let latent_dim = w
            .shape("quant_conv.weight")
            .map_or(config.codebook_embed_dim, |s| s[0]);
        let quant_conv = load::linear(w, "quant_conv", latent_dim, encoder.width)?;
        let decoder = tch::no_grad(|| Decoder::from_weights(w, &config, latent_dim))?;
        let left = w.leftover();
        if !left.is_empty() {
            tracing::warn!("unused keys in {}: {left:?}", w.path().display());
        }
        Ok(Self {
            config,
            encoder,
            quant_conv,
            decoder,
        })
    }

    /// Move/cast the whole model (e.g. `cuda:0`, bf16). Inputs must be on the same device;
    /// `encode`/`decode` cast them to the model's dtype and return f32.
    pub fn to(&self, device: tch::Device, kind: tch::Kind) -> Self {
        Self {
            config: self.config.clone(),
            encoder: self.encoder.to(device, kind),
            quant_conv: self.quant_conv.to(device, kind),
            decoder: self.decoder.to(device, kind),
        }
    }

    fn kind(&self) -> tch::Kind {
        self.quant_conv.weight.kind()
    }

    /// Images (B, 3, H, W) in [-1, 1] → latents (B, L, C_z); `mask` (B, N) for training.
    pub fn encode(&self, img: &Tensor, mask: Option<&Tensor>) -> Tensor {
        let x = img.to_kind(self.kind());
        self.quant_conv
            .forward(&self.encoder.forward(&x, mask))
            .to_kind(tch::Kind::Float)
    }

    /// Latents → images (B, 3, H, W), unclamped, on the encoder's grid.
    pub fn decode(&self, z: &Tensor) -> Tensor {
        self.decoder
            .forward(&z.to_kind(self.kind()), self.encoder.grid)
            .to_kind(tch::Kind::Float)
    }

    pub fn reconstruct(&self, img: &Tensor) -> Tensor {
        self.decode(&self.encode(img, None))
    }

    /// Every tensor under its released name (spec §2.7), buffers and the decoder's unused
    /// timm tensors included, so the official `AEModel` loads the result strictly.
    pub fn state_dict(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        self.encoder.state_dict(&mut out);
        save::linear(&mut out, "quant_conv", &self.quant_conv);
        self.decoder.state_dict(&mut out);
        out
    }

    /// The encoder side's parameters (encoder and `quant_conv`): what stage 2 freezes.
    pub fn encoder_params(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        self.encoder.params(&mut out);
        save::linear(&mut out, "quant_conv", &self.quant_conv);
        out
    }

    /// The pixel decoder's parameters (`post_quant_conv`, decoder, `to_pixel`).
    pub fn decoder_params(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        self.decoder.params(&mut out);
        out
    }

    /// Write `dir/model.safetensors` (fp32) and `dir/config.json` in the released layout,
    /// each to a temporary name first, then renamed.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        write_safetensors_atomic(&self.state_dict(), &dir.join("model.safetensors"))?;
        let cfg = serde_json::to_vec_pretty(&self.config.to_official_json())
            .map_err(std::io::Error::other)?;
        maetok_pipeline::atomic::write(&dir.join("config.json"), &cfg)
    }
}

/// Write `tensors` as fp32 on the CPU to `path` through a temporary name in the same folder,
/// so a reader sees the old file or the whole new one, never a part.
pub fn write_safetensors_atomic(tensors: &[(String, Tensor)], path: &Path) -> std::io::Result<()> {
    let tensors: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(k, t)| {
            (
                k.clone(),
                t.detach()
                    .to_kind(tch::Kind::Float)
                    .to_device(tch::Device::Cpu)
                    .contiguous(),
            )
        })
        .collect();
    let tmp = maetok_pipeline::atomic::temp_path(path);
    Tensor::write_safetensors(&tensors, &tmp).map_err(std::io::Error::other)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    maetok_pipeline::atomic::commit(&tmp, path)
}
