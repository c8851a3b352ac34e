//! The shard format: Parquet files of rows plus a `manifest.json` (ARCHITECTURE §4), with
//! the tools that check (`verify`), describe (`inspect`) and combine (`merge`) datasets.

pub mod inspect;
pub mod latent;
pub mod manifest;
pub mod merge;
pub mod reader;
pub mod schema;
pub mod verify;
pub mod writer;

use std::path::{Path, PathBuf};

/// Errors reading or writing shards and manifests.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShardError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("{path}: not a readable Parquet file: {source}")]
    ParquetFile {
        path: PathBuf,
        source: parquet::errors::ParquetError,
    },
    /// `path`: the shard file, or the shard folder for a target its manifest lacks.
    #[error("{path}: no `{column}` column (there are: {have})")]
    MissingColumn {
        path: PathBuf,
        column: String,
        have: String,
    },
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("manifest {path}: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error("{0}")]
    Config(String),
    /// A target value that is NaN or ±Inf, refused by the writer.
    #[error("{path}: row `{key}`: the `{column}` target holds NaN or ±Inf values; refusing to store them (check the teacher's weights)")]
    NonFinite {
        path: PathBuf,
        key: String,
        column: String,
    },
    /// A listed shard that is not what the manifest says (gone, resized, other bytes).
    #[error("{path}: {message} (the shard folder changed after preprocess wrote it; rerun `maetok shards verify` on it)")]
    Damaged { path: PathBuf, message: String },
}

impl ShardError {
    pub fn io(path: &Path, source: std::io::Error) -> ShardError {
        ShardError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Shard file name: `shard-NNNNN.parquet`, or `shard-rRRR-NNNNN.parquet` for node R of a
/// multi-node job.
pub fn shard_file_name(index: usize, node: Option<usize>) -> String {
    match node {
        None => format!("shard-{index:05}.parquet"),
        Some(r) => format!("shard-r{r:03}-{index:05}.parquet"),
    }
}

/// Manifest name: `manifest.json`, or `manifest-rRRR.json` for a node of a multi-node job.
pub fn manifest_file_name(node: Option<usize>) -> String {
    match node {
        None => "manifest.json".into(),
        Some(r) => format!("manifest-r{r:03}.json"),
    }
}

/// Rejects log name, paired with the manifest name.
pub fn rejects_file_name(node: Option<usize>) -> String {
    match node {
        None => "rejects.jsonl".into(),
        Some(r) => format!("rejects-r{r:03}.jsonl"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_architecture() {
        assert_eq!(shard_file_name(3, None), "shard-00003.parquet");
        assert_eq!(shard_file_name(12, Some(2)), "shard-r002-00012.parquet");
        assert_eq!(manifest_file_name(Some(1)), "manifest-r001.json");
    }
}
