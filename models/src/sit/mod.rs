//! SiT (Scalable Interpolant Transformers) on MAETok's 1-D latent tokens (spec §7.1): the
//! official `modelling/sit.py` with `vae_1d` (patch size 1, a Linear token embedder), its
//! checkpoint folder layout, presets and FLOP count. The transport maths lives in
//! `maetok-diffusion`.

pub mod block;
pub mod config;
pub mod embed;
pub mod model;

pub use config::{SitConfig, PRESETS};
pub use model::{Sit, SIT};
