//! `manifest.json`: what a dataset folder holds and how it was made. It is rewritten
//! atomically after every committed shard, so it always describes exactly the shards that
//! are complete, plus the input cursor a resumed job continues from.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::writer::ShardInfo;
use super::ShardError;
use crate::labels::LabelSet;
use crate::source::{Cursor, RootKind};

/// Value of the `format` field.
pub const FORMAT: &str = "maetok-shards";

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub schema_version: u32,
    /// True once every input unit of the job (or, after a merge, of every node) is done.
    pub complete: bool,
    pub created_by: String,
    /// Hash of everything that determines the shards' content (not threads or paths of
    /// the output); a resumed job must match it.
    pub config_hash: String,
    /// Nodes whose shards this manifest lists: `[r]` for node r's own manifest, all of
    /// them after a merge.
    pub nodes: Vec<usize>,
    pub num_nodes: usize,
    pub source: SourceInfo,
    pub preprocess: serde_json::Value,
    pub teachers: Vec<TeacherInfo>,
    /// The caption BPE behind `text_ids`, when the job tokenizes captions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextInfo>,
    /// Column name and Arrow type, in schema order.
    pub columns: Vec<ColumnInfo>,
    pub shards: Vec<ShardInfo>,
    /// Where a resumed job continues (per node; after a merge, the last node's).
    pub cursor: Cursor,
    pub rejects_file: String,
    /// Length of the rejects log that belongs to the listed shards (a resumed job truncates
    /// the log to it).
    pub rejects_bytes: u64,
    pub stats: Stats,
}

/// How `text_ids` were made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextInfo {
    /// `open_clip_bpe` (CLIP/OpenCLIP BPE, open_clip's `clean='lower'` without ftfy's
    /// mojibake repair).
    pub tokenizer: String,
    pub vocab_file: String,
    pub vocab_sha256: String,
    pub vocab_size: usize,
    /// Ids per caption at most, start and end tokens included (no padding stored).
    pub context_len: usize,
}

/// Where the rows came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceInfo {
    pub inputs: Vec<String>,
    pub roots: Vec<RootInfo>,
    /// Units (files or tars) across all nodes.
    pub total_units: usize,
    /// Units of the node(s) this manifest covers.
    pub units: usize,
    /// Hash of the input listing (names and sizes of all units).
    pub listing_hash: String,
    pub label_set: Option<LabelSet>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootInfo {
    pub path: String,
    pub kind: RootKind,
}

/// `TeacherInfo::encoding` of int8 storage with a per-token scale column.
pub const INT8_ENCODING: &str = "int8_per_token_scale";

/// One target column and how it was produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeacherInfo {
    /// Canonical name, also the column name: `hog`, `dinov2`, `siglip`, `clip`.
    pub name: String,
    pub dim: usize,
    /// Token grid (rows, cols).
    pub grid: [usize; 2],
    pub dtype: String,
    pub encoding: String,
    pub config: serde_json::Value,
    pub weights_sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: String,
}

/// Counts over the work the listed shards cover.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Images written (each as `views` rows).
    pub images: u64,
    pub rows: u64,
    /// Skipped inputs by reason (also listed one per line in the rejects log).
    pub rejects: BTreeMap<String, u64>,
    /// Images kept after a conversion to RGB8, by source mode (`L`, `RGBA`, `CMYK`, ...).
    pub converted: BTreeMap<String, u64>,
    /// Kept images whose source carries captions but which had none.
    pub missing_captions: u64,
    /// Kept images with a problem in their side files, by reason (`bad_label`: label
    /// stored null; `caption_malformed_json`; `caption_invalid_utf8`; a duplicate key
    /// renamed), each also a `kept` line in the rejects log.
    #[serde(default)]
    pub kept_with_notes: BTreeMap<String, u64>,
    /// Input bytes consumed.
    pub input_bytes: u64,
    /// Shard bytes written.
    pub output_bytes: u64,
}

impl Stats {
    pub fn total_rejects(&self) -> u64 {
        self.rejects.values().sum()
    }

    /// Adds another node's counts.
    pub fn add(&mut self, other: &Stats) {
        self.images += other.images;
        self.rows += other.rows;
        for (k, v) in &other.rejects {
            *self.rejects.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.converted {
            *self.converted.entry(k.clone()).or_default() += v;
        }
        self.missing_captions += other.missing_captions;
        for (k, v) in &other.kept_with_notes {
            *self.kept_with_notes.entry(k.clone()).or_default() += v;
        }
        self.input_bytes += other.input_bytes;
        self.output_bytes += other.output_bytes;
    }
}

impl Manifest {
    /// Reads and checks the format fields of a manifest.
    pub fn read(path: &Path) -> Result<Manifest, ShardError> {
        let bytes = std::fs::read(path).map_err(|e| ShardError::io(path, e))?;
        let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| ShardError::Manifest {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if m.format != FORMAT {
            return Err(ShardError::Manifest {
                path: path.to_path_buf(),
                message: format!("format is {:?}, expected {FORMAT:?}", m.format),
            });
        }
        if m.schema_version != super::schema::SCHEMA_VERSION {
            return Err(ShardError::Manifest {
                path: path.to_path_buf(),
                message: format!(
                    "schema version {} is not supported (this build reads {})",
                    m.schema_version,
                    super::schema::SCHEMA_VERSION
                ),
            });
        }
        Ok(m)
    }

    /// Writes the manifest atomically.
    pub fn write(&self, path: &Path) -> Result<(), ShardError> {
        let mut text = serde_json::to_vec_pretty(self).expect("manifest serialises");
        text.push(b'\n');
        maetok_nn::atomic::write(path, &text).map_err(|e| ShardError::io(path, e))
    }

    /// The Arrow schema the manifest's columns describe.
    pub fn schema_spec(&self) -> super::schema::SchemaSpec {
        super::schema::SchemaSpec {
            hog_tokens: self
                .teachers
                .iter()
                .find(|t| t.name == "hog")
                .map(|t| t.grid[0] * t.grid[1]),
            teachers: self
                .teachers
                .iter()
                .filter(|t| t.name != "hog")
                .map(|t| super::schema::TeacherColumn {
                    name: t.name.clone(),
                    tokens: t.grid[0] * t.grid[1],
                    dim: t.dim,
                    int8: t.encoding == INT8_ENCODING,
                })
                .collect(),
            text_ids: self.text.is_some(),
        }
    }
}
