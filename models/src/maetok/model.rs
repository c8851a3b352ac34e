//! `AEModel` (spec §2): encoder → `quant_conv` → latent z (B, L, C_z) → decoder. Loads the
//! released layout (`model.safetensors` + `config.json` in one folder).

use std::path::Path;

use maetok_nn::vars::{self, VarBuilder, Vars};
use maetok_nn::{Linear, LinearInit, WeightError, Weights};
use tch::Tensor;

use super::decoder::{Decoder, DecoderNames};
use super::encoder::Encoder;
use super::{AeConfig, MaetokShape};

const HINT: &str = "An MAETok checkpoint folder holds `model.safetensors` and `config.json` \
                    (e.g. the HF repo `MAETok/maetok-b-128`)";

/// The part the encoder side (encoder and `quant_conv`) is tagged with: what stage 2 freezes.
pub const ENCODER: &str = "encoder";
/// The part of the pixel decoder (`post_quant_conv`, `decoder.*`, `to_pixel`).
pub const DECODER: &str = "decoder";

/// `(B, H, W, 3)` uint8 images → the model's input: `(B, 3, H, W)` f32 in [-1, 1]
/// (`x / 127.5 − 1`, the reference's `Normalize(0.5, 0.5)` of `x / 255`).
pub fn images_to_input(images: &Tensor) -> Tensor {
    images.permute([0, 3, 1, 2]).to_kind(tch::Kind::Float) / 127.5 - 1.0
}

pub struct AeModel {
    pub config: AeConfig,
    pub shape: MaetokShape,
    /// Every tensor, under its released name (spec §2.7), tagged [`ENCODER`] or [`DECODER`].
    pub vars: Vars,
    pub encoder: Encoder,
    pub quant_conv: Linear,
    pub decoder: Decoder,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Weights(#[from] WeightError),
    #[error(transparent)]
    Config(#[from] super::config::AeConfigError),
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
    /// The one definition of the autoencoder's tensors (`vb` at the state dict's root).
    fn build(
        vb: &VarBuilder,
        shape: &MaetokShape,
    ) -> Result<(Encoder, Linear, Decoder), WeightError> {
        let enc = vb.part(ENCODER);
        let encoder = Encoder::new(&enc.pp("encoder"), shape)?;
        let quant_conv = Linear::new(
            &enc.pp("quant_conv"),
            shape.encoder.width,
            shape.latent_dim,
            LinearInit::TorchDefault,
        )?;
        let decoder = Decoder::new(
            &vb.part(DECODER),
            DecoderNames::pixel(),
            &shape.decoder,
            shape,
        )?;
        Ok((encoder, quant_conv, decoder))
    }

    /// A freshly initialised model (spec §2.5): draws from libtorch's generator, on the CPU.
    pub fn fresh(shape: MaetokShape) -> Result<Self, WeightError> {
        let ((encoder, quant_conv, decoder), vars) = vars::init(|vb| Self::build(&vb, &shape))?;
        Ok(Self {
            config: AeConfig::from_shape(&shape),
            shape,
            vars,
            encoder,
            quant_conv,
            decoder,
        })
    }

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
        Self::from_weights(w, config)
    }

    /// The model held by `w`, its architecture read off the keys (spec §2.7).
    pub fn from_weights(w: Weights, config: AeConfig) -> Result<Self, ModelError> {
        let shape = MaetokShape::read(&w, &config)?;
        let path = w.path().to_path_buf();
        let ((encoder, quant_conv, decoder), vars, left) =
            vars::load(w, |vb| Self::build(&vb, &shape))?;
        if !left.is_empty() {
            tracing::warn!("unused keys in {}: {left:?}", path.display());
        }
        Ok(Self {
            config,
            shape,
            vars,
            encoder,
            quant_conv,
            decoder,
        })
    }

    /// Move/cast the whole model in place (e.g. `cuda:0`, bf16; RoPE frequencies stay
    /// fp32). Inputs must be on the same device; `encode`/`decode` cast them to the model's
    /// dtype and return f32.
    pub fn to(&mut self, device: tch::Device, kind: tch::Kind) {
        self.vars.to(device, kind);
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

    /// Write `dir/model.safetensors` (fp32) and `dir/config.json` in the released layout,
    /// each to a temporary name first, then renamed.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        self.vars.save(&dir.join("model.safetensors"), |_| true)?;
        self.config.save(dir)
    }
}
