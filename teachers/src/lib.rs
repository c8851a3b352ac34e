//! The frozen networks, built from the shared blocks of `maetok-nn`: the feature
//! extractors ("teachers") whose outputs MAETok's auxiliary decoders learn to predict
//! (spec §4), and the networks the training losses read through (LPIPS, the
//! discriminator's backbone).
//!
//! * [`hog`]: pure-Rust HOG (spec §4.2).
//! * [`lpips`]: LPIPS-VGG16, the perceptual loss (spec §5.1).
//! * [`inception`]: Inception-v3 as pytorch-fid defines it for FID (spec §8.2).
//! * [`dino_disc`]: the DINO ViT-S/16 backbone of the discriminator (spec §5.2).
//! * [`vit`]: timm's `VisionTransformer.forward_features`; [`layout`] converts HF, OpenCLIP
//!   and timm checkpoints to its names.
//! * [`teacher`]: the [`Teacher`] trait and the registry ([`build`]) by canonical name.

pub mod dino_disc;
pub mod family;
pub mod hog;
pub mod hog_teacher;
pub mod inception;
pub mod layout;
pub mod lpips;
pub mod model_config;
pub mod random;
pub mod teacher;
pub mod vit;

pub use family::{Family, Normalization};
pub use teacher::{build, Teacher, TeacherError, TeacherSpec};
