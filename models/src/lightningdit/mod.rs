//! LightningDiT (`hustvl/LightningDiT`) on MAETok's 1-D latent tokens (spec §7.5): RMSNorm,
//! SwiGLU, 1-D RoPE, adaLN; its own t = 0 noise convention converted at
//! [`LightningDit::forward`].

pub mod block;
pub mod config;
pub mod model;

pub use config::{LightningDitConfig, PRESETS};
pub use model::{LightningDit, LIGHTNING_DIT};
