//! Writing one Parquet shard as a transaction: rows go to `<name>.tmp`, and only a shard
//! that was written completely is fsynced and renamed to its final name. The sha256 is
//! computed while writing (Parquet is written strictly sequentially), so committing costs
//! no second read.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, FixedSizeListArray, Float16Array, Float32Array,
    Int16Array, Int32Array, Int8Array, RecordBatch, StringArray, StructArray,
};
use arrow::datatypes::{DataType, Schema};
use half::f16;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use sha2::{Digest, Sha256};

use super::schema::{arrow_schema, crop_fields, SchemaSpec, TeacherColumn};
use super::ShardError;
use crate::image::views::CropBox;
use crate::preprocess::teach::Features;
use maetok_nn::atomic;

/// One shard row: one view of one image.
#[derive(Debug, Clone)]
pub struct Row {
    pub key: String,
    pub view: i16,
    pub crop: CropBox,
    pub label: Option<i32>,
    pub caption: Option<String>,
    /// PNG bytes of the view.
    pub image: Vec<u8>,
    /// HOG features, tokens × 108, token-major.
    pub hog: Option<Vec<f16>>,
    /// ViT teacher features, in the schema's teacher order.
    pub teachers: Vec<Features>,
    /// Caption BPE ids (None: no caption, or no tokenizer configured).
    pub text_ids: Option<Vec<i32>>,
}

/// Parquet settings shared by every shard of a job.
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    pub zstd_level: i32,
    pub row_group_rows: usize,
    /// Rows per Arrow batch handed to the Parquet writer (fixed, so files are reproducible).
    pub batch_rows: usize,
}

/// A committed shard, as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShardInfo {
    pub file: String,
    pub rows: u64,
    pub images: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// `Write` that hashes and counts what passes through.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writer properties: zstd, bounded row groups, no dictionaries or statistics on the large
/// binary/tensor columns (they would cost time and bytes and serve no query), and no zstd
/// on the `image` column, whose PNG bytes are already deflated (zstd gains nothing there and
/// was the writer's largest cost).
pub fn writer_properties(
    opts: &WriteOptions,
    spec: &SchemaSpec,
) -> Result<WriterProperties, ShardError> {
    let level = ZstdLevel::try_new(opts.zstd_level)
        .map_err(|e| ShardError::Config(format!("zstd_level {}: {e}", opts.zstd_level)))?;
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_max_row_group_row_count(Some(opts.row_group_rows))
        .set_created_by(format!("maetok {}", env!("CARGO_PKG_VERSION")))
        .set_dictionary_enabled(false)
        .set_statistics_enabled(EnabledStatistics::Chunk);
    let mut tensor_columns = vec![vec!["image"], vec!["hog", "list", "item"], vec!["caption"]];
    for t in &spec.teachers {
        tensor_columns.push(vec![t.name.as_str(), "list", "item"]);
    }
    for col in tensor_columns {
        b = b.set_column_statistics_enabled(
            ColumnPath::new(col.into_iter().map(String::from).collect()),
            EnabledStatistics::None,
        );
    }
    b = b.set_column_compression(ColumnPath::from("image"), Compression::UNCOMPRESSED);
    // Parquet has no 8-bit type: int8 is stored as INT32, whose sign-extension bytes zstd
    // only partly removes under PLAIN (1.34 bytes per value measured on the demo's features).
    // Delta bit-packing stores each value in 9 bits or fewer: 1.15 bytes per value after
    // zstd. (Byte-stream split was worse, 1.42: the sign bytes are random per value.)
    for t in spec.teachers.iter().filter(|t| t.int8) {
        b = b.set_column_encoding(
            ColumnPath::new(vec![t.name.clone(), "list".into(), "item".into()]),
            parquet::basic::Encoding::DELTA_BINARY_PACKED,
        );
    }
    Ok(b.build())
}

/// An open shard being written.
pub struct ShardWriter {
    final_path: PathBuf,
    tmp_path: PathBuf,
    schema: Arc<Schema>,
    teachers: Vec<TeacherColumn>,
    writer: ArrowWriter<Hashing<BufWriter<File>>>,
    pending: Vec<Row>,
    batch_rows: usize,
    rows: u64,
    images: u64,
}

impl ShardWriter {
    /// Starts `dir/file_name` (written as `file_name.tmp` until [`ShardWriter::finish`]).
    pub fn create(
        dir: &Path,
        file_name: &str,
        spec: &SchemaSpec,
        opts: &WriteOptions,
    ) -> Result<ShardWriter, ShardError> {
        let final_path = dir.join(file_name);
        let tmp_path = atomic::temp_path(&final_path);
        let file = File::create(&tmp_path).map_err(|e| ShardError::io(&tmp_path, e))?;
        let sink = Hashing {
            inner: BufWriter::with_capacity(4 << 20, file),
            hash: Sha256::new(),
            bytes: 0,
        };
        let schema = Arc::new(arrow_schema(spec));
        let writer =
            ArrowWriter::try_new(sink, schema.clone(), Some(writer_properties(opts, spec)?))?;
        Ok(ShardWriter {
            final_path,
            tmp_path,
            schema,
            teachers: spec.teachers.clone(),
            writer,
            pending: Vec::new(),
            batch_rows: opts.batch_rows.max(1),
            rows: 0,
            images: 0,
        })
    }

    /// Adds the views of one image.
    pub fn push_image(&mut self, rows: Vec<Row>) -> Result<(), ShardError> {
        for r in &rows {
            self.check_finite(r)?;
        }
        self.rows += rows.len() as u64;
        self.images += 1;
        self.pending.extend(rows);
        while self.pending.len() >= self.batch_rows {
            let rest = self.pending.split_off(self.batch_rows);
            let batch = std::mem::replace(&mut self.pending, rest);
            self.write_batch(batch)?;
        }
        Ok(())
    }

    /// A target that is NaN or ±Inf (a diverged teacher, an f16 overflow) would train every
    /// step that reads it on garbage: refused, naming the row and the column.
    fn check_finite(&self, r: &Row) -> Result<(), ShardError> {
        let refuse = |column: &str| {
            Err(ShardError::NonFinite {
                path: self.final_path.clone(),
                key: r.key.clone(),
                column: column.to_string(),
            })
        };
        if r.hog
            .as_ref()
            .is_some_and(|h| h.iter().any(|v| !v.is_finite()))
        {
            return refuse("hog");
        }
        for (t, f) in self.teachers.iter().zip(&r.teachers) {
            let bad = match f {
                Features::F16(v) => v.iter().any(|x| !x.is_finite()),
                Features::Int8 { scales, .. } => scales.iter().any(|x| !x.is_finite()),
            };
            if bad {
                return refuse(&t.name);
            }
        }
        Ok(())
    }

    /// Rows pushed so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    fn write_batch(&mut self, rows: Vec<Row>) -> Result<(), ShardError> {
        let batch = to_record_batch(&self.schema, &self.teachers, rows)?;
        self.writer.write(&batch)?;
        Ok(())
    }

    /// Writes the footer, fsyncs and renames the shard to its final name.
    pub fn finish(mut self) -> Result<ShardInfo, ShardError> {
        let rest = std::mem::take(&mut self.pending);
        if !rest.is_empty() {
            self.write_batch(rest)?;
        }
        let sink = self.writer.into_inner()?;
        let Hashing { inner, hash, bytes } = sink;
        let file = inner
            .into_inner()
            .map_err(|e| ShardError::io(&self.tmp_path, e.into_error()))?;
        file.sync_all()
            .map_err(|e| ShardError::io(&self.tmp_path, e))?;
        drop(file);
        atomic::commit(&self.tmp_path, &self.final_path)
            .map_err(|e| ShardError::io(&self.final_path, e))?;
        Ok(ShardInfo {
            file: self
                .final_path
                .file_name()
                .expect("shard file name")
                .to_string_lossy()
                .into_owned(),
            rows: self.rows,
            images: self.images,
            bytes,
            sha256: hex::encode(hash.finalize()),
        })
    }
}

/// Column-wise conversion of rows into an Arrow batch of `schema`.
fn to_record_batch(
    schema: &Arc<Schema>,
    teachers: &[TeacherColumn],
    rows: Vec<Row>,
) -> Result<RecordBatch, ShardError> {
    let crop = |f: fn(&CropBox) -> f32| {
        Arc::new(Float32Array::from_iter_values(
            rows.iter().map(|r| f(&r.crop)),
        )) as ArrayRef
    };
    let crop_arrays: Vec<ArrayRef> = vec![
        crop(|c| c.left),
        crop(|c| c.top),
        crop(|c| c.width),
        crop(|c| c.height),
        Arc::new(BooleanArray::from(
            rows.iter().map(|r| r.crop.flip).collect::<Vec<_>>(),
        )),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.key.as_str()),
        )),
        Arc::new(Int16Array::from_iter_values(rows.iter().map(|r| r.view))),
        Arc::new(StructArray::new(crop_fields(), crop_arrays, None)),
        Arc::new(Int32Array::from(
            rows.iter().map(|r| r.label).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            rows.iter()
                .map(|r| r.caption.as_deref())
                .collect::<Vec<_>>(),
        )),
        Arc::new(BinaryArray::from_iter_values(
            rows.iter().map(|r| r.image.as_slice()),
        )),
    ];
    if let Ok(field) = schema.field_with_name("hog") {
        let DataType::FixedSizeList(child, len) = field.data_type() else {
            unreachable!("hog is a fixed-size list")
        };
        let mut values = Vec::with_capacity(rows.len() * *len as usize);
        for r in &rows {
            let hog = r
                .hog
                .as_ref()
                .ok_or_else(|| ShardError::Config(format!("row {} has no HOG features", r.key)))?;
            if hog.len() != *len as usize {
                return Err(ShardError::Config(format!(
                    "row {}: HOG has {} values, schema expects {len}",
                    r.key,
                    hog.len()
                )));
            }
            values.extend_from_slice(hog);
        }
        columns.push(Arc::new(FixedSizeListArray::new(
            child.clone(),
            *len,
            Arc::new(Float16Array::from(values)),
            None,
        )));
    }
    for (i, t) in teachers.iter().enumerate() {
        teacher_columns(t, i, &rows, &mut columns)?;
    }
    if schema.field_with_name("text_ids").is_ok() {
        let mut b = arrow::array::ListBuilder::new(arrow::array::Int32Builder::new()).with_field(
            Arc::new(arrow::datatypes::Field::new("item", DataType::Int32, false)),
        );
        for r in &rows {
            match &r.text_ids {
                Some(ids) => {
                    b.values().append_slice(ids);
                    b.append(true);
                }
                None => b.append(false),
            }
        }
        columns.push(Arc::new(b.finish()));
    }
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// The column(s) of teacher `t` (index `i` in each row's features).
fn teacher_columns(
    t: &TeacherColumn,
    i: usize,
    rows: &[Row],
    columns: &mut Vec<ArrayRef>,
) -> Result<(), ShardError> {
    let len = t.tokens * t.dim;
    let item = |dt| Arc::new(arrow::datatypes::Field::new("item", dt, false));
    let mismatch = |r: &Row| {
        ShardError::Config(format!(
            "row {} view {}: `{}` features missing or not {} values in the configured encoding",
            r.key, r.view, t.name, len
        ))
    };
    if t.int8 {
        let mut values = Vec::with_capacity(rows.len() * len);
        let mut scales = Vec::with_capacity(rows.len() * t.tokens);
        for r in rows {
            match r.teachers.get(i) {
                Some(Features::Int8 {
                    values: v,
                    scales: s,
                }) if v.len() == len && s.len() == t.tokens => {
                    values.extend_from_slice(v);
                    scales.extend_from_slice(s);
                }
                _ => return Err(mismatch(r)),
            }
        }
        columns.push(Arc::new(FixedSizeListArray::new(
            item(DataType::Int8),
            len as i32,
            Arc::new(Int8Array::from(values)),
            None,
        )));
        columns.push(Arc::new(FixedSizeListArray::new(
            item(DataType::Float16),
            t.tokens as i32,
            Arc::new(Float16Array::from(scales)),
            None,
        )));
    } else {
        let mut values: Vec<f16> = Vec::with_capacity(rows.len() * len);
        for r in rows {
            match r.teachers.get(i) {
                Some(Features::F16(v)) if v.len() == len => values.extend_from_slice(v),
                _ => return Err(mismatch(r)),
            }
        }
        columns.push(Arc::new(FixedSizeListArray::new(
            item(DataType::Float16),
            len as i32,
            Arc::new(Float16Array::from(values)),
            None,
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::schema::TeacherColumn;

    #[test]
    fn non_finite_targets_are_refused_naming_row_and_column() {
        let dir = std::env::temp_dir().join(format!("maetok-writer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let spec = SchemaSpec {
            hog_tokens: Some(1),
            teachers: vec![TeacherColumn {
                name: "dinov2".into(),
                tokens: 1,
                dim: 2,
                int8: false,
            }],
            text_ids: false,
        };
        let opts = WriteOptions {
            zstd_level: 1,
            row_group_rows: 8,
            batch_rows: 8,
        };
        let row = |key: &str, hog: f32, feat: f32| Row {
            key: key.into(),
            view: 0,
            crop: CropBox {
                left: 0.0,
                top: 0.0,
                width: 1.0,
                height: 1.0,
                flip: false,
            },
            label: None,
            caption: None,
            image: vec![0],
            hog: Some(vec![f16::from_f32(hog); 108]),
            teachers: vec![Features::F16(vec![f16::from_f32(feat); 2])],
            text_ids: None,
        };
        let mut w = ShardWriter::create(&dir, "shard-00000.parquet", &spec, &opts).unwrap();
        w.push_image(vec![row("fine", 0.5, 1.0)]).unwrap();
        let e = w
            .push_image(vec![row("bad", 0.5, f32::NAN)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("`bad`") && e.contains("`dinov2`"), "{e}");
        let e = w
            .push_image(vec![row("inf", f32::INFINITY, 1.0)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("`inf`") && e.contains("`hog`"), "{e}");
        assert_eq!(w.rows(), 1);
        std::fs::remove_dir_all(&dir).ok();
    }
}
