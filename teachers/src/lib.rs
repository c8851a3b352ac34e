//! Frozen feature extractors ("teachers") whose outputs MAETok's auxiliary decoders learn to
//! predict (spec §4). This crate starts with HOG (spec §4.2); the DINOv2, SigLIP and CLIP
//! vision encoders on libtorch join it behind a common trait in a later issue.

pub mod hog;
