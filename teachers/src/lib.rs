//! Frozen feature extractors ("teachers") whose outputs MAETok's auxiliary decoders learn to
//! predict (spec §4), and the device-generic ViT building blocks they share with the
//! tokenizer and SiT.
//!
//! * [`hog`]: pure-Rust HOG (spec §4.2).
//! * [`nn`]: patch embedding, attention (explicit / SDPA, q-k hook for RoPE), MLPs, ViT
//!   block, position-grid and patch-kernel resampling.
//! * [`vit`]: timm's `VisionTransformer.forward_features`; [`layout`] converts HF, OpenCLIP
//!   and timm checkpoints to its names.
//! * [`teacher`]: the [`Teacher`] trait and the registry ([`build`]) by canonical name.

pub mod device;
pub mod family;
pub mod hog;
pub mod hog_teacher;
pub mod layout;
pub mod model_config;
pub mod nn;
pub mod random;
pub mod teacher;
pub mod vit;
pub mod weights;

pub use family::{Family, Normalization};
pub use teacher::{build, Teacher, TeacherError, TeacherSpec};
