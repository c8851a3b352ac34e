//! Frozen feature extractors ("teachers") whose outputs MAETok's auxiliary decoders learn to
//! predict (spec §4), built from the shared blocks of `maetok-nn`.
//!
//! * [`hog`]: pure-Rust HOG (spec §4.2).
//! * [`vit`]: timm's `VisionTransformer.forward_features`; [`layout`] converts HF, OpenCLIP
//!   and timm checkpoints to its names.
//! * [`teacher`]: the [`Teacher`] trait and the registry ([`build`]) by canonical name.

pub mod dino_disc;
pub mod family;
pub mod hog;
pub mod hog_teacher;
pub mod layout;
pub mod lpips;
pub mod model_config;
pub mod random;
pub mod teacher;
pub mod vit;

pub use family::{Family, Normalization};
pub use teacher::{build, Teacher, TeacherError, TeacherSpec};
