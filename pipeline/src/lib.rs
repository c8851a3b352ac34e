//! The data side of maetok: sources (ImageFolder, flat folders, WebDataset tars), image
//! operations with Pillow-exact semantics, the views stored per image, the Parquet shard
//! format with its manifest, and the staged, resumable preprocess job.

pub mod caption;
pub mod image;
pub mod labels;
pub mod preprocess;
pub mod shard;
pub mod source;
pub mod synth;
pub mod threads;
