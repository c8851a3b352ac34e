//! `maetok shards verify DIR`: checks that a dataset folder is exactly what its manifest
//! says: every listed shard present with its size, sha256, row count and schema, nothing
//! half-written or unlisted beside them, counts adding up, and (with `deep`) every row
//! readable with a decodable image of the right size and finite targets.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::datatypes::Float16Type;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::manifest::Manifest;
use super::reader::{Rows, TargetColumn};
use super::schema::{arrow_schema, schema_differences};
use super::ShardError;

/// Result of a verification: empty `problems` means the dataset is sound.
#[derive(Debug, Default)]
pub struct VerifyReport {
    pub manifests: Vec<PathBuf>,
    pub shards: usize,
    pub rows: u64,
    pub bytes: u64,
    pub problems: Vec<String>,
}

/// The manifests of a folder: the main manifest if present, else the per-node ones (in
/// `__maetok__/`, or beside the shards in folders written before it).
pub fn find_manifests(dir: &Path) -> Result<Vec<PathBuf>, ShardError> {
    let main = super::manifest_path(dir);
    if main.exists() {
        return Ok(vec![main]);
    }
    let side = dir.join(super::SIDECAR);
    let node_manifests = |d: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d)
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                        n.starts_with("manifest-r") && n.ends_with(".json")
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    if !dir.is_dir() {
        return Err(ShardError::io(
            dir,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such folder"),
        ));
    }
    let mut nodes = node_manifests(&side);
    if nodes.is_empty() {
        nodes = node_manifests(dir);
    }
    if nodes.is_empty() {
        return Err(ShardError::Manifest {
            path: main,
            message: "no manifest (__maetok__/manifest.json or manifest-rNNN.json) in this folder"
                .into(),
        });
    }
    Ok(nodes)
}

/// Verifies every manifest of `dir` and the shards it lists.
pub fn verify(dir: &Path, deep: bool) -> Result<VerifyReport, ShardError> {
    let mut report = VerifyReport {
        manifests: find_manifests(dir)?,
        ..Default::default()
    };
    let mut listed = std::collections::BTreeSet::new();
    for mpath in report.manifests.clone() {
        let m = Manifest::read(&mpath)?;
        let tag = mpath
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if !m.complete {
            report.problems.push(format!(
                "{tag}: job is not complete (resume it with the same command)"
            ));
        }
        let expected = arrow_schema(&m.schema_spec());
        let columns: Vec<String> = expected.fields().iter().map(|f| f.name().clone()).collect();
        let listed_columns: Vec<String> = m.columns.iter().map(|c| c.name.clone()).collect();
        if columns != listed_columns {
            report.problems.push(format!(
                "{tag}: columns {listed_columns:?} do not match the schema's {columns:?}"
            ));
        }
        let (mut rows, mut images) = (0u64, 0u64);
        for s in &m.shards {
            listed.insert(s.file.clone());
            rows += s.rows;
            images += s.images;
            check_shard(dir, s, &expected, &m, deep, &mut report);
        }
        if rows != m.stats.rows || images != m.stats.images {
            report.problems.push(format!(
                "{tag}: shards hold {rows} rows / {images} images but the stats say {} / {}",
                m.stats.rows, m.stats.images
            ));
        }
    }
    // Leftovers a crashed writer could have produced, or shards no manifest mentions.
    for entry in std::fs::read_dir(dir)
        .map_err(|e| ShardError::io(dir, e))?
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tmp") {
            report
                .problems
                .push(format!("{name}: unfinished temporary file"));
        } else if name.starts_with("shard-")
            && name.ends_with(".parquet")
            && !listed.contains(&name)
        {
            report
                .problems
                .push(format!("{name}: shard not listed in any manifest"));
        }
    }
    Ok(report)
}

fn check_shard(
    dir: &Path,
    s: &super::writer::ShardInfo,
    expected: &arrow::datatypes::Schema,
    m: &Manifest,
    deep: bool,
    report: &mut VerifyReport,
) {
    let path = dir.join(&s.file);
    let mut problem = |p: String| report.problems.push(format!("{}: {p}", s.file));
    let size = match std::fs::metadata(&path) {
        Ok(meta) => meta.len(),
        Err(e) => return problem(format!("cannot stat: {e}")),
    };
    if size != s.bytes {
        problem(format!("{size} bytes, manifest says {}", s.bytes));
    }
    match maetok_nn::weights::file_sha256(&path) {
        Ok(h) if h != s.sha256 => problem(format!(
            "sha256 {h} differs from the manifest's {}",
            s.sha256
        )),
        Err(e) => problem(format!("cannot read: {e}")),
        Ok(_) => {}
    }
    let builder = match File::open(&path)
        .map_err(|e| ShardError::io(&path, e))
        .and_then(|f| Ok(ParquetRecordBatchReaderBuilder::try_new(f)?))
    {
        Ok(b) => b,
        Err(e) => return problem(format!("not a readable Parquet file: {e}")),
    };
    let file_rows = builder.metadata().file_metadata().num_rows() as u64;
    if file_rows != s.rows {
        problem(format!("{file_rows} rows, manifest says {}", s.rows));
    }
    for d in schema_differences(expected, builder.schema()) {
        problem(d);
    }
    report.shards += 1;
    report.rows += file_rows;
    report.bytes += size;
    if deep {
        let resolution = m
            .preprocess
            .get("resolution")
            .and_then(|v| v.as_u64())
            .unwrap_or(0) as usize;
        let targets: Vec<TargetColumn> = m.teachers.iter().map(TargetColumn::of).collect();
        if let Err(e) = deep_check(builder, &path, resolution, &targets, &mut problem) {
            problem(format!("reading rows failed: {e}"));
        }
    }
}

/// Reads every row: images decode to `resolution²`, HOG and teacher targets are finite.
fn deep_check(
    builder: ParquetRecordBatchReaderBuilder<File>,
    path: &Path,
    resolution: usize,
    targets: &[TargetColumn],
    problem: &mut dyn FnMut(String),
) -> Result<(), ShardError> {
    let opts = crate::image::decode::DecodeOptions::default();
    for batch in builder.with_batch_size(256).build()? {
        let batch = batch?;
        let rows = Rows::new(batch.clone(), path);
        for t in targets {
            let bad = (0..rows.len())
                .filter(|&i| {
                    rows.target(t, i)
                        .map_or(true, |v| v.iter().any(|x| !x.is_finite()))
                })
                .count();
            if bad > 0 {
                problem(format!(
                    "`{}` target: {bad} row(s) hold NaN, ±Inf or unreadable values",
                    t.name
                ));
            }
        }
        let keys = batch
            .column_by_name("key")
            .expect("schema checked")
            .as_string::<i32>();
        let images = batch
            .column_by_name("image")
            .expect("schema checked")
            .as_binary::<i32>();
        for i in 0..batch.num_rows() {
            match crate::image::decode::decode_rgb8(images.value(i), &opts) {
                Ok(d) if d.image.width == resolution && d.image.height == resolution => {}
                Ok(d) => problem(format!(
                    "row {}: image is {:?}, expected {resolution}x{resolution}",
                    keys.value(i),
                    d.image
                )),
                Err(e) => problem(format!("row {}: image does not decode: {e}", keys.value(i))),
            }
        }
        if let Some(hog) = batch.column_by_name("hog") {
            let values = hog
                .as_fixed_size_list()
                .values()
                .as_primitive::<Float16Type>();
            if values.null_count() > 0 || values.values().iter().any(|v| !v.is_finite()) {
                problem("HOG column holds null or non-finite values".into());
            }
        }
    }
    Ok(())
}
