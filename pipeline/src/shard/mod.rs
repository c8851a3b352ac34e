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

/// The folder inside a shard folder that holds everything besides the shards (manifests,
/// rejects logs, job summaries). Readers that open the folder as one dataset skip it:
/// pyarrow (and pandas, which uses it) skips names starting with `_` or `.`, HF `datasets`
/// skips `.`-files and `__`-folders, DuckDB globs `*.parquet`. Folders written before it
/// kept these files beside the shards; they are still read.
pub const SIDECAR: &str = "__maetok__";

/// Manifest path relative to the shard folder: `__maetok__/manifest.json`, or
/// `__maetok__/manifest-rRRR.json` for a node of a multi-node job.
pub fn manifest_file_name(node: Option<usize>) -> String {
    match node {
        None => format!("{SIDECAR}/manifest.json"),
        Some(r) => format!("{SIDECAR}/manifest-r{r:03}.json"),
    }
}

/// Rejects log path relative to the shard folder, paired with the manifest.
pub fn rejects_file_name(node: Option<usize>) -> String {
    match node {
        None => format!("{SIDECAR}/rejects.jsonl"),
        Some(r) => format!("{SIDECAR}/rejects-r{r:03}.jsonl"),
    }
}

/// Job summary path relative to the shard folder.
pub fn summary_file_name(node: Option<usize>) -> String {
    match node {
        None => format!("{SIDECAR}/summary.json"),
        Some(r) => format!("{SIDECAR}/summary-r{r:03}.json"),
    }
}

/// The main manifest of `dir` to read: `__maetok__/manifest.json`, else the
/// `manifest.json` beside the shards of a folder written before the sidecar folder.
pub fn manifest_path(dir: &Path) -> PathBuf {
    node_manifest_path(dir, None)
}

/// The manifest of node `node` (`None`: the main one) in `dir`: in `__maetok__/`, or beside
/// the shards when the folder was written before the sidecar folder (its manifest is there
/// and not in `__maetok__/`), so old folders are read and resumed in their layout.
pub fn node_manifest_path(dir: &Path, node: Option<usize>) -> PathBuf {
    let name = manifest_file_name(node);
    let new = dir.join(&name);
    let old = dir.join(name.trim_start_matches(&format!("{SIDECAR}/")));
    if !new.exists() && old.exists() {
        old
    } else {
        new
    }
}

/// Whether `dir` is a shard (or latent) folder: it has a main manifest, new or old layout.
pub fn is_shard_folder(dir: &Path) -> bool {
    manifest_path(dir).is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_architecture() {
        assert_eq!(shard_file_name(3, None), "shard-00003.parquet");
        assert_eq!(shard_file_name(12, Some(2)), "shard-r002-00012.parquet");
        assert_eq!(manifest_file_name(Some(1)), "__maetok__/manifest-r001.json");
        assert_eq!(rejects_file_name(None), "__maetok__/rejects.jsonl");
    }
}
