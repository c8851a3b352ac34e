//! The preprocess job's settings: a TOML file (`--config`), overridden by command-line
//! flags. Unknown keys are errors that list the allowed ones; bad values name the key and
//! the allowed range.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use maetok_nn::device::{parse_device, parse_kind};
use maetok_teachers::{Normalization, TeacherSpec};

use super::teach::Storage;
use crate::image::png::PngCompression;
use crate::source::FolderLayout;

/// Everything that determines the content of the shards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PreprocessConfig {
    /// Folders, tar files or brace patterns of tars.
    pub inputs: Vec<String>,
    /// Side of the square views in pixels (multiple of 16).
    pub resolution: usize,
    /// Views per image: 0 = ADM center crop, 1 = its flip, ≥ 2 random-resized crops.
    pub views: u16,
    /// Seed of the random-resized crops.
    pub seed: u64,
    /// Compute HOG targets (spec §4.2).
    pub hog: bool,
    /// Rows per shard (a shard closes at the first image boundary at or past it).
    pub shard_rows: usize,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
    /// Apply the EXIF orientation tag (the reference pipelines do not).
    pub exif_orientation: bool,
    /// Decompression-bomb limit in pixels.
    pub max_pixels: u64,
    /// Images whose short side is below this many pixels are skipped as `too_small`.
    pub min_side: usize,
    pub png_compression: PngCompression,
    /// zstd level of the Parquet pages (1..=22).
    pub zstd_level: i32,
    /// How folders are read.
    pub layout: FolderLayout,
    /// `filename,synset` CSV labelling a flat folder (e.g. ImageNet val).
    pub labels_csv: Option<PathBuf>,
    /// JSON fields tried, in order, for a caption when a sample has no `.txt`.
    pub caption_fields: Vec<String>,
    /// ViT teachers run on every view (`[[teachers]]` tables).
    pub teachers: Vec<TeacherConfig>,
    /// CLIP BPE vocabulary (`bpe_simple_vocab_16e6.txt.gz` or a `tokenizer.json`): when set,
    /// captions are tokenized into `text_ids` (spec §4.5).
    pub caption_bpe: Option<PathBuf>,
    /// What to do with a sample whose key an earlier one has (the same basename twice in a
    /// tar, `a.jpg` and `a.png` in one folder, an input given twice).
    pub duplicates: Duplicates,
    /// Classes of a WebDataset's `.cls` labels: one at or above it is stored null and
    /// counted (`bad_label`), as a negative or non-integer one is. `None`: not checked.
    pub num_classes: Option<usize>,
}

/// The duplicate-key policy: keys are unique in a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Duplicates {
    /// Keep the first, skip and count the others (`duplicate_key`), with a warning.
    #[default]
    Skip,
    /// Stop the job at the first duplicate.
    Error,
    /// Keep every one, renaming later ones `key~2`, `key~3`, … (counted, logged).
    Suffix,
}

/// One ViT teacher of the job: which network, where it runs, how its output is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeacherConfig {
    /// Canonical name and column: `dinov2`, `siglip` or `clip`.
    pub name: String,
    /// The downloaded `.safetensors` (timm, HF or OpenCLIP layout).
    pub weights: PathBuf,
    /// Model config; default: the `config.json` / `open_clip_config.json` next to the weights.
    #[serde(default)]
    pub model_config: Option<PathBuf>,
    /// `cpu`, `cuda`, `cuda:N`.
    #[serde(default = "default_device")]
    pub device: String,
    /// `f32` or `bf16`; default bf16 on GPU, f32 on CPU.
    #[serde(default)]
    pub dtype: Option<String>,
    /// `f16`, or `int8` with a per-token f16 scale.
    #[serde(default)]
    pub storage: Storage,
    /// Views per forward pass.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Patch size the teacher runs at (16 gives one token per tokenizer patch, spec §4.3).
    #[serde(default = "default_patch")]
    pub patch_size: i64,
    /// `imagenet` (the reference's choice for every teacher), `clip` or `siglip`.
    #[serde(default)]
    pub normalization: Option<String>,
}

fn default_device() -> String {
    "cpu".into()
}
fn default_batch() -> usize {
    32
}
fn default_patch() -> i64 {
    16
}

impl TeacherConfig {
    /// The teacher crate's build spec for views of `resolution` pixels.
    pub fn spec(&self, resolution: usize) -> Result<TeacherSpec, ConfigError> {
        let bad = |key: &'static str, value: &str, allowed: String| ConfigError::Value {
            key,
            value: format!("{value:?} (teacher `{}`)", self.name),
            allowed,
        };
        let device = parse_device(&self.device)
            .map_err(|e| bad("teachers.device", &self.device, e.to_string()))?;
        let kind = parse_kind(self.dtype.as_deref(), device).map_err(|e| {
            bad(
                "teachers.dtype",
                self.dtype.as_deref().unwrap_or(""),
                e.to_string(),
            )
        })?;
        let normalization = match &self.normalization {
            Some(n) => Some(Normalization::parse(n).ok_or_else(|| {
                bad(
                    "teachers.normalization",
                    n,
                    "imagenet, clip or siglip".into(),
                )
            })?),
            None => None,
        };
        let r = resolution as i64;
        Ok(TeacherSpec {
            model_config: self.model_config.clone(),
            device,
            kind,
            resolution: (r, r),
            patch_size: self.patch_size,
            normalization,
            ..TeacherSpec::new(&self.name, Some(self.weights.clone()))
        })
    }
}
impl Default for PreprocessConfig {
    fn default() -> Self {
        PreprocessConfig {
            inputs: Vec::new(),
            resolution: 256,
            views: 1,
            seed: 0,
            hog: true,
            shard_rows: 2048,
            row_group_rows: 256,
            exif_orientation: false,
            max_pixels: crate::image::decode::DecodeOptions::default().max_pixels,
            min_side: 8,
            png_compression: PngCompression::Fast,
            zstd_level: 3,
            layout: FolderLayout::Auto,
            labels_csv: None,
            caption_fields: ["caption", "top_caption", "TEXT"]
                .map(String::from)
                .to_vec(),
            teachers: Vec::new(),
            caption_bpe: None,
            duplicates: Duplicates::Skip,
            num_classes: None,
        }
    }
}

/// A setting that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("`{key}` = {value} is not allowed: {allowed}")]
    Value {
        key: &'static str,
        value: String,
        allowed: String,
    },
}

impl PreprocessConfig {
    /// Reads a TOML config file (keys as the fields of this struct).
    pub fn from_file(path: &Path) -> Result<PreprocessConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Checks every value, naming the key and what is allowed.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |key, value: String, allowed: &str| {
            Err(ConfigError::Value {
                key,
                value,
                allowed: allowed.to_string(),
            })
        };
        if self.inputs.is_empty() {
            return err(
                "inputs",
                "[]".into(),
                "at least one folder, tar file or tar pattern",
            );
        }
        if self.resolution < 16 || !self.resolution.is_multiple_of(16) || self.resolution > 4096 {
            return err(
                "resolution",
                self.resolution.to_string(),
                "a multiple of 16 from 16 to 4096 (256 and 512 are the paper's)",
            );
        }
        if self.views == 0 || self.views > 64 {
            return err(
                "views",
                self.views.to_string(),
                "1 to 64 (view 0 = center crop, 1 = its flip, 2+ = random-resized crops)",
            );
        }
        if self.shard_rows == 0 {
            return err("shard_rows", "0".into(), "at least 1");
        }
        if self.row_group_rows == 0 || self.row_group_rows > 1_000_000 {
            return err(
                "row_group_rows",
                self.row_group_rows.to_string(),
                "1 to 1000000",
            );
        }
        if !(1..=22).contains(&self.zstd_level) {
            return err("zstd_level", self.zstd_level.to_string(), "1 to 22");
        }
        if self.max_pixels == 0 {
            return err("max_pixels", "0".into(), "at least 1");
        }
        let mut seen = std::collections::HashSet::new();
        for t in &self.teachers {
            if !["dinov2", "siglip", "clip"].contains(&t.name.as_str()) {
                return err(
                    "teachers.name",
                    format!("{:?}", t.name),
                    "dinov2, siglip or clip (HOG is the `hog` switch)",
                );
            }
            if !seen.insert(t.name.as_str()) {
                return err(
                    "teachers.name",
                    format!("{:?}", t.name),
                    "each teacher at most once",
                );
            }
            if t.batch_size == 0 {
                return err("teachers.batch_size", "0".into(), "at least 1");
            }
            if t.patch_size < 1 || self.resolution as i64 % t.patch_size != 0 {
                return err(
                    "teachers.patch_size",
                    t.patch_size.to_string(),
                    &format!("a divisor of resolution = {}", self.resolution),
                );
            }
        }
        if self.caption_fields.iter().any(|f| f.is_empty()) {
            return err(
                "caption_fields",
                format!("{:?}", self.caption_fields),
                "non-empty JSON field names",
            );
        }
        Ok(())
    }

    /// Hash of the settings and inputs (plus the node count) that fix the shards' content;
    /// a resumed or merged job must have the same one.
    pub fn content_hash(&self, num_nodes: usize) -> String {
        let mut h = Sha256::new();
        h.update(serde_json::to_vec(self).expect("config serialises"));
        h.update(format!(
            "|nodes={num_nodes}|schema={}",
            crate::shard::schema::SCHEMA_VERSION
        ));
        hex::encode(&h.finalize()[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_list_the_allowed_ones() {
        let e = toml::from_str::<PreprocessConfig>("resolutoin = 256")
            .unwrap_err()
            .to_string();
        assert!(e.contains("resolutoin") && e.contains("resolution"), "{e}");
    }

    #[test]
    fn bad_enum_values_list_the_choices() {
        let e = toml::from_str::<PreprocessConfig>("png_compression = \"ultra\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ultra") && e.contains("fast") && e.contains("best"),
            "{e}"
        );
    }

    #[test]
    fn validation_names_key_and_range() {
        let c = PreprocessConfig {
            inputs: vec!["x".into()],
            resolution: 250,
            ..Default::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("`resolution` = 250") && e.contains("multiple of 16"),
            "{e}"
        );
    }

    /// Every preset in `configs/preprocess-*.toml` parses and validates.
    #[test]
    fn presets_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !(name.starts_with("preprocess-") && name.ends_with(".toml")) {
                continue;
            }
            let mut c = PreprocessConfig::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
            if c.inputs.is_empty() {
                c.inputs.push("x".into()); // the tiny preset leaves inputs to the command line
            }
            c.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
            n += 1;
        }
        assert!(n >= 4, "found {n} presets");
    }

    #[test]
    fn hash_tracks_content_not_identity() {
        let a = PreprocessConfig {
            inputs: vec!["x".into()],
            ..Default::default()
        };
        let b = PreprocessConfig {
            seed: 1,
            ..a.clone()
        };
        assert_eq!(a.content_hash(1), a.clone().content_hash(1));
        assert_ne!(a.content_hash(1), b.content_hash(1));
        assert_ne!(a.content_hash(1), a.content_hash(2));
    }
}
