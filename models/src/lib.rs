pub mod denoiser;
pub mod lightningdit;
pub mod maetok;
pub mod sit;
