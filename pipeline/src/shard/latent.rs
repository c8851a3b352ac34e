//! Latent shards (ARCHITECTURE §4), written by `maetok encode` when its output is a folder:
//! `shard-NNNNN.parquet` with `key` (utf8), `label` (int32, nullable), `latent` and
//! `latent_flip` (fixed_size_list<float32>[L·C], token-major: the latent of the ADM crop and
//! of its horizontal flip, spec §6), and `manifest.json` with the latent shape, the image
//! count, and the mean and standard deviation over every element of `latent` (spec §6:
//! `vq_mean` / `vq_std` candidates). Shards are written under a temporary name and renamed
//! when complete; the manifest is rewritten atomically after each shard and says
//! `complete: true` only at the end, and an unfinished folder is continued by the same job
//! (`LatentWriter::create_or_resume`). `LatentFolder` reads them back (the SiT loader's
//! input).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListArray, Float32Array, Int32Array, RecordBatch,
    StringArray,
};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::datatypes::{Float32Type, Int32Type};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use super::ShardError;

pub const FORMAT: &str = "maetok-latents";
/// Rows per Parquet row group (the unit a random read decodes).
const ROWS_PER_GROUP: usize = 16;
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatentShardInfo {
    pub file: String,
    pub rows: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatentManifest {
    pub format: String,
    pub schema_version: u32,
    pub complete: bool,
    /// (L, C) of each latent.
    pub latent_shape: [usize; 2],
    pub images: u64,
    /// Over every element of `latent` (not `latent_flip`), once complete.
    pub mean: Option<f64>,
    pub std: Option<f64>,
    /// Who wrote it: checkpoint, resolution, input.
    pub source: serde_json::Value,
    pub shards: Vec<LatentShardInfo>,
}

impl LatentManifest {
    pub fn read(path: &Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        serde_json::from_str(&text).map_err(std::io::Error::other)
    }
}

struct Row {
    key: String,
    label: Option<i32>,
    latent: Vec<f32>,
    flip: Vec<f32>,
}

pub struct LatentWriter {
    dir: PathBuf,
    rows_per_shard: usize,
    pending: Vec<Row>,
    manifest: LatentManifest,
    sum: f64,
    sum_sq: f64,
    count: u64,
}

fn schema(n: usize) -> Arc<Schema> {
    let list = DataType::FixedSizeList(
        Arc::new(Field::new("item", DataType::Float32, false)),
        n as i32,
    );
    Arc::new(Schema::new(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("label", DataType::Int32, true),
        Field::new("latent", list.clone(), false),
        Field::new("latent_flip", list, false),
    ]))
}

impl LatentWriter {
    /// Start a latent folder at `dir` (created; must not hold a manifest already).
    pub fn create(
        dir: &Path,
        latent_shape: [usize; 2],
        rows_per_shard: usize,
        source: serde_json::Value,
    ) -> std::io::Result<Self> {
        if super::is_shard_folder(dir) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!(
                    "{} already holds a latent manifest; choose an empty folder",
                    dir.display()
                ),
            ));
        }
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            rows_per_shard: rows_per_shard.max(1),
            pending: Vec::new(),
            manifest: LatentManifest {
                format: FORMAT.into(),
                schema_version: SCHEMA_VERSION,
                complete: false,
                latent_shape,
                images: 0,
                mean: None,
                std: None,
                source,
                shards: Vec::new(),
            },
            sum: 0.0,
            sum_sq: 0.0,
            count: 0,
        })
    }

    /// Continue the unfinished latent folder at `dir` that a job with the same `source`
    /// began (or start one, as [`LatentWriter::create`], when there is none). Returns the
    /// writer and the number of images its shards already hold: the caller skips that many
    /// of its inputs, in order. Every listed shard is checked against its sha256; shard
    /// files the manifest does not list (a kill between a shard's rename and the manifest
    /// update) and temporary files are removed, to be written again. The statistics are
    /// summed again from the kept shards in their order, so they come out as an
    /// uninterrupted job's. A complete folder, or one begun by another job, is refused.
    pub fn create_or_resume(
        dir: &Path,
        latent_shape: [usize; 2],
        rows_per_shard: usize,
        source: serde_json::Value,
    ) -> std::io::Result<(Self, u64)> {
        let path = super::manifest_path(dir);
        if !path.is_file() {
            return Ok((Self::create(dir, latent_shape, rows_per_shard, source)?, 0));
        }
        let refuse = |why: String| {
            std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!(
                    "{} already holds {why}; choose an empty folder",
                    dir.display()
                ),
            )
        };
        let manifest = LatentManifest::read(&path)?;
        if manifest.format != FORMAT || manifest.schema_version != SCHEMA_VERSION {
            return Err(refuse(format!(
                "not a latent folder of this build ({})",
                manifest.format
            )));
        }
        if manifest.complete {
            return Err(refuse("a complete latent folder".into()));
        }
        if manifest.source != source || manifest.latent_shape != latent_shape {
            return Err(refuse(format!(
                "an unfinished encode of another checkpoint, input or setting ({})",
                manifest.source
            )));
        }
        let listed: std::collections::HashSet<String> =
            manifest.shards.iter().map(|s| s.file.clone()).collect();
        for e in std::fs::read_dir(dir)? {
            let name = e?.file_name().to_string_lossy().into_owned();
            let stray =
                (name.ends_with(".parquet") && !listed.contains(&name)) || name.ends_with(".tmp");
            if stray {
                std::fs::remove_file(dir.join(&name))?;
            }
        }
        let mut w = Self {
            dir: dir.to_path_buf(),
            rows_per_shard: rows_per_shard.max(1),
            pending: Vec::new(),
            manifest,
            sum: 0.0,
            sum_sq: 0.0,
            count: 0,
        };
        let n = latent_shape[0] * latent_shape[1];
        for s in w.manifest.shards.clone() {
            let p = dir.join(&s.file);
            super::reader::check_sha256(&p, &s.sha256).map_err(|e| {
                std::io::Error::other(format!(
                    "{e}: the folder was damaged; encode into an empty folder"
                ))
            })?;
            let rows = super::reader::read_file(&p, Some(&["latent".to_string()]))
                .map_err(std::io::Error::other)?;
            for b in rows {
                let b = LatentRows {
                    batch: b.map_err(std::io::Error::other)?.into_batch(),
                    len: n,
                };
                for i in 0..b.len() {
                    w.add_stats(b.latent(i).map_err(std::io::Error::other)?);
                }
            }
        }
        let done = w.manifest.images;
        Ok((w, done))
    }

    fn add_stats(&mut self, latent: &[f32]) {
        for &v in latent {
            self.sum += v as f64;
            self.sum_sq += (v as f64) * (v as f64);
        }
        self.count += latent.len() as u64;
    }

    /// One image's latents (L·C values each, token-major).
    pub fn push(
        &mut self,
        key: String,
        label: Option<i32>,
        latent: Vec<f32>,
        flip: Vec<f32>,
    ) -> std::io::Result<()> {
        let n = self.manifest.latent_shape[0] * self.manifest.latent_shape[1];
        if latent.len() != n || flip.len() != n {
            return Err(std::io::Error::other(format!(
                "{key}: latent of {} / {} values, expected {n}",
                latent.len(),
                flip.len()
            )));
        }
        self.add_stats(&latent);
        self.pending.push(Row {
            key,
            label,
            latent,
            flip,
        });
        if self.pending.len() >= self.rows_per_shard {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.pending);
        let n = self.manifest.latent_shape[0] * self.manifest.latent_shape[1];
        let list = |vals: Vec<f32>| -> std::io::Result<ArrayRef> {
            let field = Arc::new(Field::new("item", DataType::Float32, false));
            Ok(Arc::new(
                FixedSizeListArray::try_new(
                    field,
                    n as i32,
                    Arc::new(Float32Array::from(vals)),
                    None,
                )
                .map_err(std::io::Error::other)?,
            ))
        };
        let keys: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
        let labels: Vec<Option<i32>> = rows.iter().map(|r| r.label).collect();
        let batch = RecordBatch::try_new(
            schema(n),
            vec![
                Arc::new(StringArray::from(keys)),
                Arc::new(Int32Array::from(labels)),
                list(rows.iter().flat_map(|r| r.latent.iter().copied()).collect())?,
                list(rows.iter().flat_map(|r| r.flip.iter().copied()).collect())?,
            ],
        )
        .map_err(std::io::Error::other)?;
        let name = format!("shard-{:05}.parquet", self.manifest.shards.len());
        let path = self.dir.join(&name);
        let tmp = maetok_nn::atomic::temp_path(&path);
        {
            // Random access, not compression, is what the SiT loader needs: a batch reads
            // rows scattered over the folder, and Parquet decodes whole row groups. So
            // small row groups (16 latents, 256 KiB a column) and no compression (latents
            // are float noise to zstd: 256-row zstd groups made the loader thread burn 44 %
            // of a 2-core training step's CPU, decoding 64 MB per batch of 32).
            let props = WriterProperties::builder()
                .set_compression(Compression::UNCOMPRESSED)
                .set_max_row_group_row_count(Some(ROWS_PER_GROUP))
                .set_dictionary_enabled(false)
                .build();
            let mut w = ArrowWriter::try_new(File::create(&tmp)?, schema(n), Some(props))
                .map_err(std::io::Error::other)?;
            w.write(&batch).map_err(std::io::Error::other)?;
            w.into_inner().map_err(std::io::Error::other)?.sync_all()?;
        }
        let sha256 = maetok_nn::weights::file_sha256(&tmp)?;
        maetok_nn::atomic::commit(&tmp, &path)?;
        crate::preprocess::fault::point("latent_shard_renamed");
        self.manifest.images += rows.len() as u64;
        self.manifest.shards.push(LatentShardInfo {
            file: name,
            rows: rows.len() as u64,
            sha256,
        });
        self.write_manifest()
    }

    fn write_manifest(&self) -> std::io::Result<()> {
        let text = serde_json::to_vec_pretty(&self.manifest).map_err(std::io::Error::other)?;
        maetok_nn::atomic::write(&self.dir.join(super::manifest_file_name(None)), &text)
    }

    /// Write the last shard and the complete manifest with the statistics.
    pub fn finish(mut self) -> std::io::Result<LatentManifest> {
        self.flush()?;
        if self.count > 0 {
            let mean = self.sum / self.count as f64;
            let var = (self.sum_sq / self.count as f64 - mean * mean).max(0.0);
            self.manifest.mean = Some(mean);
            self.manifest.std = Some(var.sqrt());
        }
        self.manifest.complete = true;
        self.write_manifest()?;
        Ok(self.manifest)
    }
}

/// A latent-shard folder for reading (the SiT loader's input): the manifest with the
/// latents' shape and statistics, then the rows.
#[derive(Debug, Clone)]
pub struct LatentFolder {
    dir: PathBuf,
    manifest: LatentManifest,
}

impl LatentFolder {
    /// Reads `dir/manifest.json`, refusing a folder that is not a complete latent folder.
    pub fn open(dir: &Path) -> Result<Self, ShardError> {
        let path = super::manifest_path(dir);
        let manifest = LatentManifest::read(&path).map_err(|e| ShardError::io(&path, e))?;
        let bad = |message: String| ShardError::Manifest {
            path: path.clone(),
            message,
        };
        if manifest.format != FORMAT {
            return Err(bad(format!(
                "format `{}`, not a latent folder (`{FORMAT}`)",
                manifest.format
            )));
        }
        if manifest.schema_version != SCHEMA_VERSION {
            return Err(bad(format!(
                "schema version {}; this build reads {SCHEMA_VERSION}",
                manifest.schema_version
            )));
        }
        if !manifest.complete {
            return Err(bad("the encode job has not finished (not complete)".into()));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    pub fn manifest(&self) -> &LatentManifest {
        &self.manifest
    }

    /// Mean and standard deviation over every element of `latent` (spec §6).
    pub fn mean_std(&self) -> Option<(f64, f64)> {
        self.manifest.mean.zip(self.manifest.std)
    }

    /// Values per latent (L·C).
    pub fn latent_len(&self) -> usize {
        self.manifest.latent_shape[0] * self.manifest.latent_shape[1]
    }

    /// Images per shard, in manifest order.
    pub fn shard_images(&self) -> Vec<usize> {
        self.manifest
            .shards
            .iter()
            .map(|s| s.rows as usize)
            .collect()
    }

    pub fn shard_path(&self, shard: usize) -> PathBuf {
        self.dir.join(&self.manifest.shards[shard].file)
    }

    /// Checks that every shard the manifest lists is there with its row count (and, with
    /// `verify`, its sha256), before a training run depends on it.
    pub fn check_files(&self, verify: bool) -> Result<(), ShardError> {
        for (i, s) in self.manifest.shards.iter().enumerate() {
            let path = self.shard_path(i);
            let damaged = |message: String| ShardError::Damaged {
                path: path.clone(),
                message,
            };
            let rows = super::reader::open(&path)?
                .metadata()
                .file_metadata()
                .num_rows() as u64;
            if rows != s.rows {
                return Err(damaged(format!(
                    "{rows} rows, the manifest says {}",
                    s.rows
                )));
            }
            if verify {
                super::reader::check_sha256(&path, &s.sha256)?;
            }
        }
        Ok(())
    }

    /// Rows `rows` (sorted, unique) of shard `shard`, with every column.
    pub fn read_rows(&self, shard: usize, rows: &[usize]) -> Result<Vec<LatentRows>, ShardError> {
        let columns = ["key", "label", "latent", "latent_flip"].map(String::from);
        Ok(
            super::reader::read_selected(&self.shard_path(shard), rows, &columns)?
                .into_iter()
                .map(|batch| LatentRows {
                    batch,
                    len: self.latent_len(),
                })
                .collect(),
        )
    }

    /// Every row of every shard, in manifest order.
    pub fn read_all(&self) -> impl Iterator<Item = Result<LatentRows, ShardError>> + '_ {
        super::reader::chain_files(self.manifest.shards.iter().map(move |s| {
            let reader = super::reader::open(&self.dir.join(&s.file))?.build()?;
            Ok(reader.map(move |b| {
                Ok(LatentRows {
                    batch: b?,
                    len: self.latent_len(),
                })
            }))
        }))
    }
}

/// A record batch of latent rows with typed access.
#[derive(Debug, Clone)]
pub struct LatentRows {
    batch: RecordBatch,
    len: usize,
}

impl LatentRows {
    pub fn len(&self) -> usize {
        self.batch.num_rows()
    }

    pub fn is_empty(&self) -> bool {
        self.batch.num_rows() == 0
    }

    fn column(&self, name: &str) -> Result<&dyn Array, ShardError> {
        self.batch
            .column_by_name(name)
            .map(|c| c.as_ref())
            .ok_or_else(|| ShardError::Config(format!("latent shard without a `{name}` column")))
    }

    pub fn key(&self, i: usize) -> Result<&str, ShardError> {
        Ok(self.column("key")?.as_string::<i32>().value(i))
    }

    pub fn label(&self, i: usize) -> Result<Option<i32>, ShardError> {
        let c = self.column("label")?.as_primitive::<Int32Type>();
        Ok((!c.is_null(i)).then(|| c.value(i)))
    }

    fn list(&self, name: &str, i: usize) -> Result<&[f32], ShardError> {
        let list = self.column(name)?.as_fixed_size_list();
        let at = list.value_offset_at(i);
        let values = list.values().as_primitive::<Float32Type>().values();
        Ok(&values[at..at + self.len])
    }

    /// The latent of the ADM crop, token-major (L·C values).
    pub fn latent(&self, i: usize) -> Result<&[f32], ShardError> {
        self.list("latent", i)
    }

    /// The latent of its horizontal flip.
    pub fn latent_flip(&self, i: usize) -> Result<&[f32], ShardError> {
        self.list("latent_flip", i)
    }
}
