//! `maetok preprocess`: raw images → views → targets → Parquet shards.

pub mod config;
pub mod driver;
pub mod fault;
pub mod process;
pub mod progress;
pub mod teach;

pub use config::PreprocessConfig;
pub use driver::{run, PreprocessError, RunOptions, Summary};
