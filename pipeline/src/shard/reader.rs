//! The one reader of shard folders (ARCHITECTURE §4): the manifest, then Parquet rows with
//! column projection and row selection, and typed access to what a row holds (key, view,
//! label, caption, PNG bytes, teacher targets with f16 or int8 + scale decoded, caption BPE
//! ids). The trainer's loader, `encode`/`reconstruct` inputs, the demo and the tests read
//! shards through it; nothing outside `shard/` opens a shard's Parquet file.

use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float16Type, Int16Type, Int32Type, Int8Type};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReaderBuilder, RowSelection, RowSelector};
use parquet::arrow::ProjectionMask;

use super::manifest::{Manifest, TeacherInfo, INT8_ENCODING};
use super::ShardError;

/// A shard folder: its manifest and where its shards are.
#[derive(Debug, Clone)]
pub struct ShardFolder {
    dir: PathBuf,
    manifest: Manifest,
}

/// How a target column is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetColumn {
    pub name: String,
    /// Tokens per row (the teacher's grid).
    pub tokens: usize,
    /// Values per token.
    pub dim: usize,
    /// int8 values with a per-token f16 scale in `<name>_scale` (else f16 values).
    pub int8: bool,
}

impl TargetColumn {
    /// How the manifest's teacher `t` is stored.
    pub fn of(t: &TeacherInfo) -> Self {
        Self {
            name: t.name.clone(),
            tokens: t.grid[0] * t.grid[1],
            dim: t.dim,
            int8: t.encoding == INT8_ENCODING,
        }
    }

    /// The Parquet columns that hold it.
    pub fn columns(&self) -> Vec<String> {
        let mut c = vec![self.name.clone()];
        if self.int8 {
            c.push(format!("{}_scale", self.name));
        }
        c
    }
}

impl ShardFolder {
    /// Reads `dir/manifest.json`.
    pub fn open(dir: &Path) -> Result<Self, ShardError> {
        let manifest = Manifest::read(&super::manifest_path(dir))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Number of shards the manifest lists.
    pub fn shards(&self) -> usize {
        self.manifest.shards.len()
    }

    /// Path of shard `i`.
    pub fn shard_path(&self, i: usize) -> PathBuf {
        self.dir.join(&self.manifest.shards[i].file)
    }

    /// Stored views per image (`preprocess.views`, 1 when absent).
    pub fn views(&self) -> u16 {
        self.manifest.preprocess["views"]
            .as_u64()
            .unwrap_or(1)
            .max(1) as u16
    }

    /// Checks that every shard the manifest lists is there with its size (and, with
    /// `sha256`, its bytes' hash) before a job starts reading: a missing or truncated shard
    /// is found now, not thousands of steps in, and a shard that left the manifest is never
    /// silently skipped.
    pub fn check_files(&self, sha256: bool) -> Result<(), ShardError> {
        // A shard beside the listed ones (a manifest rolled back, a shard copied in) would
        // be silently left out of training: refuse, naming it.
        let listed: std::collections::HashSet<&str> = self
            .manifest
            .shards
            .iter()
            .map(|s| s.file.as_str())
            .collect();
        let mut unlisted: Vec<String> = std::fs::read_dir(&self.dir)
            .map_err(|e| ShardError::io(&self.dir, e))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".parquet") && !listed.contains(n.as_str()))
            .collect();
        unlisted.sort();
        if let Some(first) = unlisted.first() {
            return Err(ShardError::Damaged {
                path: self.dir.join(first),
                message: format!(
                    "not listed in the manifest ({} such file(s)), so its rows would not be \
                     trained on",
                    unlisted.len()
                ),
            });
        }
        for s in &self.manifest.shards {
            let path = self.dir.join(&s.file);
            let damaged = |message: String| ShardError::Damaged {
                path: path.clone(),
                message,
            };
            let size = std::fs::metadata(&path)
                .map_err(|e| damaged(format!("listed in the manifest but cannot be read: {e}")))?
                .len();
            if size != s.bytes {
                return Err(damaged(format!(
                    "{size} bytes, the manifest says {}",
                    s.bytes
                )));
            }
            if sha256 {
                check_sha256(&path, &s.sha256)?;
            }
        }
        Ok(())
    }

    /// Side of the stored views in pixels (`preprocess.resolution`; 0 when absent).
    pub fn resolution(&self) -> usize {
        self.manifest.preprocess["resolution"].as_u64().unwrap_or(0) as usize
    }

    /// The stored target `name` (a teacher column), or an error naming the columns there are.
    pub fn target(&self, name: &str) -> Result<TargetColumn, ShardError> {
        let t = self
            .manifest
            .teachers
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| ShardError::MissingColumn {
                path: self.dir.clone(),
                column: name.to_string(),
                have: self
                    .manifest
                    .teachers
                    .iter()
                    .map(|t| t.name.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        Ok(TargetColumn::of(t))
    }

    /// Rows `rows` (sorted, unique) of shard `shard`, projected to `columns`.
    pub fn read_rows(
        &self,
        shard: usize,
        rows: &[usize],
        columns: &[String],
    ) -> Result<Vec<Rows>, ShardError> {
        let path = self.shard_path(shard);
        Ok(read_selected(&path, rows, columns)?
            .into_iter()
            .map(|b| Rows::new(b, &path))
            .collect())
    }

    /// Every row of shard `shard` in order, in record batches, projected to `columns`
    /// (`None`: all of them).
    pub fn read_shard(
        &self,
        shard: usize,
        columns: Option<&[String]>,
    ) -> Result<impl Iterator<Item = Result<Rows, ShardError>>, ShardError> {
        read_file(&self.shard_path(shard), columns)
    }

    /// Every row of every shard, in manifest order.
    pub fn read_all(
        &self,
        columns: Option<&[String]>,
    ) -> impl Iterator<Item = Result<Rows, ShardError>> + '_ {
        let columns = columns.map(|c| c.to_vec());
        chain_files((0..self.shards()).map(move |s| self.read_shard(s, columns.as_deref())))
    }
}

/// The rows of files opened one after another: each opened file's batches, and a file
/// that failed to open as one `Err` in its place.
pub(super) fn chain_files<'a, T: 'a, I>(
    files: impl Iterator<Item = Result<I, ShardError>> + 'a,
) -> impl Iterator<Item = Result<T, ShardError>> + 'a
where
    I: Iterator<Item = Result<T, ShardError>> + 'a,
{
    files.flat_map(
        |f| -> Box<dyn Iterator<Item = Result<T, ShardError>> + 'a> {
            match f {
                Ok(it) => Box::new(it),
                Err(e) => Box::new(std::iter::once(Err(e))),
            }
        },
    )
}

/// Every row of the shard file `path` in order, projected to `columns` (`None`: all), for
/// the writer's own files before a manifest lists them as a folder (a resumed job).
pub fn read_file(
    path: &Path,
    columns: Option<&[String]>,
) -> Result<impl Iterator<Item = Result<Rows, ShardError>> + use<>, ShardError> {
    let builder = open(path)?;
    let builder = match columns {
        Some(c) => {
            let mask = projection(&builder, c);
            builder.with_projection(mask)
        }
        None => builder,
    };
    let reader = builder.build()?;
    let path = path.to_path_buf();
    Ok(reader.map(move |b| Ok(Rows::new(b?, &path))))
}

/// The shard file `path` has the sha256 its manifest lists (`want`), or the error naming
/// both: the one content check of image and latent shards.
pub(super) fn check_sha256(path: &Path, want: &str) -> Result<(), ShardError> {
    let damaged = |message: String| ShardError::Damaged {
        path: path.to_path_buf(),
        message,
    };
    let h =
        maetok_nn::weights::file_sha256(path).map_err(|e| damaged(format!("cannot read: {e}")))?;
    if h != want {
        return Err(damaged(format!("sha256 {h}, the manifest says {want}")));
    }
    Ok(())
}

/// Rows `rows` (sorted, unique) of the Parquet file `path`, projected to `columns`: the
/// one row-selecting read, for image and latent shards alike.
pub(super) fn read_selected(
    path: &Path,
    rows: &[usize],
    columns: &[String],
) -> Result<Vec<RecordBatch>, ShardError> {
    let builder = open(path)?;
    let total = builder.metadata().file_metadata().num_rows() as usize;
    let mask = projection(&builder, columns);
    let mut selectors = Vec::new();
    let mut at = 0usize;
    for &r in rows {
        if r > at {
            selectors.push(RowSelector::skip(r - at));
        }
        selectors.push(RowSelector::select(1));
        at = r + 1;
    }
    if total > at {
        selectors.push(RowSelector::skip(total - at));
    }
    let reader = builder
        .with_projection(mask)
        .with_row_selection(RowSelection::from(selectors))
        .with_batch_size(rows.len().max(1))
        .build()?;
    reader
        .map(|b| b.map_err(ShardError::from))
        .collect::<Result<Vec<_>, ShardError>>()
}

pub(super) fn open(
    path: &Path,
) -> Result<ParquetRecordBatchReaderBuilder<std::fs::File>, ShardError> {
    let file = std::fs::File::open(path).map_err(|e| ShardError::io(path, e))?;
    ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| ShardError::ParquetFile {
        path: path.to_path_buf(),
        source: e,
    })
}

fn projection(
    builder: &ParquetRecordBatchReaderBuilder<std::fs::File>,
    columns: &[String],
) -> ProjectionMask {
    let roots: Vec<usize> = builder
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| columns.iter().any(|c| c == f.name()))
        .map(|(i, _)| i)
        .collect();
    ProjectionMask::roots(builder.parquet_schema(), roots)
}

/// A record batch of shard rows, with typed access by column and row.
#[derive(Debug, Clone)]
pub struct Rows {
    batch: RecordBatch,
    path: PathBuf,
}

impl Rows {
    pub(super) fn new(batch: RecordBatch, path: &Path) -> Self {
        Self {
            batch,
            path: path.to_path_buf(),
        }
    }

    /// The record batch (for readers of other shard kinds built on this one).
    pub(super) fn into_batch(self) -> RecordBatch {
        self.batch
    }

    pub fn len(&self) -> usize {
        self.batch.num_rows()
    }

    pub fn is_empty(&self) -> bool {
        self.batch.num_rows() == 0
    }

    /// The Arrow batch itself (for the schema checks of the tests and `verify`).
    pub fn record_batch(&self) -> &RecordBatch {
        &self.batch
    }

    fn column(&self, name: &str) -> Result<&dyn Array, ShardError> {
        self.batch
            .column_by_name(name)
            .map(|c| c.as_ref())
            .ok_or_else(|| ShardError::MissingColumn {
                path: self.path.clone(),
                column: name.to_string(),
                have: self
                    .batch
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    pub fn key(&self, i: usize) -> Result<&str, ShardError> {
        Ok(self.column("key")?.as_string::<i32>().value(i))
    }

    pub fn view(&self, i: usize) -> Result<i16, ShardError> {
        Ok(self.column("view")?.as_primitive::<Int16Type>().value(i))
    }

    pub fn label(&self, i: usize) -> Result<Option<i32>, ShardError> {
        let c = self.column("label")?.as_primitive::<Int32Type>();
        Ok((!c.is_null(i)).then(|| c.value(i)))
    }

    pub fn caption(&self, i: usize) -> Result<Option<&str>, ShardError> {
        let c = self.column("caption")?.as_string::<i32>();
        Ok((!c.is_null(i)).then(|| c.value(i)))
    }

    /// The stored view's PNG bytes (`None` for a null cell).
    pub fn image(&self, i: usize) -> Result<Option<&[u8]>, ShardError> {
        let c = self.column("image")?.as_binary::<i32>();
        Ok((!c.is_null(i)).then(|| c.value(i)))
    }

    /// Caption BPE ids (empty for a row without a caption).
    pub fn text_ids(&self, i: usize) -> Result<Vec<i32>, ShardError> {
        let c = self.column("text_ids")?.as_list::<i32>();
        Ok(if c.is_null(i) {
            Vec::new()
        } else {
            c.value(i).as_primitive::<Int32Type>().values().to_vec()
        })
    }

    /// Row `i` of target `t` as f32, token-major (tokens · dim values), int8 storage
    /// dequantised with its per-token scale.
    pub fn target(&self, t: &TargetColumn, i: usize) -> Result<Vec<f32>, ShardError> {
        let v = self.column(&t.name)?.as_fixed_size_list().value(i);
        if !t.int8 {
            return Ok(v
                .as_primitive::<Float16Type>()
                .values()
                .iter()
                .map(|x| x.to_f32())
                .collect());
        }
        let scale = self
            .column(&format!("{}_scale", t.name))?
            .as_fixed_size_list()
            .value(i);
        let scale = scale.as_primitive::<Float16Type>();
        Ok(v.as_primitive::<Int8Type>()
            .values()
            .chunks(t.dim)
            .zip(scale.values())
            .flat_map(|(tok, s)| tok.iter().map(move |&q| q as f32 * s.to_f32()))
            .collect())
    }
}
