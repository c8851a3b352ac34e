//! Evaluation: files in, numbers out (spec §8). The ADM evaluator's `.npz` batches
//! ([`npz`] writes sample batches, [`npy`] reads batches and statistics), and the generation
//! metrics on Inception features ([`features`]: extraction from `.npz` batches and image
//! folders, cached): [`fid`] (the Fréchet distance, also sFID on the spatial features),
//! [`inception_score`], [`precision_recall`]; the tokenizer's [`reconstruction`] metrics
//! (PSNR, SSIM as the reference computes them); the latent-space analyses: [`probe`] (linear
//! probing), [`pca`] and [`gmm`] (the mode analysis).

pub mod features;
pub mod fid;
pub mod gmm;
pub mod inception_score;
pub mod npy;
pub mod npz;
pub mod pca;
pub mod precision_recall;
pub mod probe;
pub mod reconstruction;
