//! The MAETok tokenizer (`AEModel`, spec §2): ViT encoder with learnable latent tokens and
//! mixed 2-D RoPE → 128×32 latent → pixel decoder (MoVQ-style or plain ViT, chosen from the
//! checkpoint's keys), loading the released `model.safetensors` + `config.json` layout.

pub mod aux;
pub mod config;
pub mod decoder;
pub mod encoder;
pub mod mask;
pub mod model;
pub mod shape;

pub use config::AeConfig;
pub use model::{images_to_input, AeModel, ModelError, DECODER, ENCODER};
pub use shape::{DecoderShape, MaetokShape, TowerShape};
