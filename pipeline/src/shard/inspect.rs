//! `maetok shards inspect DIR`: a human summary of a dataset folder.

use std::fmt::Write as _;
use std::fs::File;
use std::path::Path;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float32Type, Int16Type, Int32Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::manifest::Manifest;
use super::verify::find_manifests;
use super::ShardError;

fn human_bytes(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", units[u])
}

/// Renders the summary of `dir`, with the first `sample_rows` rows of the first shard.
pub fn inspect(dir: &Path, sample_rows: usize) -> Result<String, ShardError> {
    let mut out = String::new();
    for mpath in find_manifests(dir)? {
        let m = Manifest::read(&mpath)?;
        summarize(&mut out, &mpath, &m);
        if sample_rows > 0 {
            if let Some(first) = m.shards.first() {
                sample(&mut out, &dir.join(&first.file), sample_rows)?;
            }
        }
    }
    Ok(out)
}

fn summarize(out: &mut String, path: &Path, m: &Manifest) {
    let p = &m.preprocess;
    let get = |k: &str| {
        p.get(k)
            .map(|v| v.to_string())
            .unwrap_or_else(|| "?".into())
    };
    let s = &m.stats;
    let bytes: u64 = m.shards.iter().map(|x| x.bytes).sum();
    let _ = writeln!(out, "dataset      {}", path.display());
    let _ = writeln!(
        out,
        "status       {} (schema v{}, {})",
        if m.complete { "complete" } else { "INCOMPLETE" },
        m.schema_version,
        m.created_by
    );
    let _ = writeln!(out, "nodes        {:?} of {}", m.nodes, m.num_nodes);
    let _ = writeln!(out, "inputs       {}", m.source.inputs.join(", "));
    let _ = writeln!(
        out,
        "images       {} ({} rows, {} views each, {}px, seed {})",
        s.images,
        s.rows,
        get("views"),
        get("resolution"),
        get("seed")
    );
    let _ = writeln!(
        out,
        "shards       {} files, {} ({} per image)",
        m.shards.len(),
        human_bytes(bytes),
        human_bytes(bytes / s.images.max(1))
    );
    let cols: Vec<String> = m
        .columns
        .iter()
        .map(|c| format!("{}: {}", c.name, c.data_type))
        .collect();
    let _ = writeln!(out, "columns      {}", cols.join("\n             "));
    for t in &m.teachers {
        let random = if t.config["random_weights"].as_bool() == Some(true) {
            "  RANDOM WEIGHTS: not a trained teacher"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "target       {} ({}x{} tokens x {}, {} {}){random}",
            t.name, t.grid[0], t.grid[1], t.dim, t.dtype, t.encoding
        );
    }
    match &m.source.label_set {
        Some(crate::labels::LabelSet::Imagenet1k) => {
            let _ = writeln!(out, "labels       ImageNet-1k synset indices");
        }
        Some(crate::labels::LabelSet::Classes { names }) => {
            let _ = writeln!(
                out,
                "labels       {} classes of the dataset's own: {}",
                names.len(),
                names.iter().take(8).cloned().collect::<Vec<_>>().join(", ")
            );
        }
        None if m
            .source
            .roots
            .iter()
            .any(|r| r.kind == crate::source::RootKind::WebDataset) =>
        {
            let _ = writeln!(
                out,
                "labels       class indices from the samples' .cls members (null where none; \
                 bad ones counted in kept_with_notes)"
            );
        }
        None => {
            let _ = writeln!(out, "labels       none");
        }
    }
    let rej: Vec<String> = s.rejects.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    let _ = writeln!(
        out,
        "rejects      {} ({})",
        s.total_rejects(),
        if rej.is_empty() {
            "none".into()
        } else {
            rej.join(", ")
        }
    );
    let conv: Vec<String> = s
        .converted
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    let _ = writeln!(
        out,
        "converted    {}",
        if conv.is_empty() {
            "none".into()
        } else {
            conv.join(", ")
        }
    );
    let _ = writeln!(
        out,
        "captions     {} kept images without one",
        s.missing_captions
    );
    let _ = writeln!(out, "input        {} read", human_bytes(s.input_bytes));
}

fn sample(out: &mut String, shard: &Path, n: usize) -> Result<(), ShardError> {
    let file = File::open(shard).map_err(|e| ShardError::io(shard, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)?
        .with_batch_size(n)
        .build()?;
    let _ = writeln!(
        out,
        "first rows of {}:",
        shard.file_name().unwrap_or_default().to_string_lossy()
    );
    if let Some(batch) = reader.into_iter().next() {
        let batch = batch?;
        let key = batch.column_by_name("key").expect("key").as_string::<i32>();
        let view = batch
            .column_by_name("view")
            .expect("view")
            .as_primitive::<Int16Type>();
        let label = batch
            .column_by_name("label")
            .expect("label")
            .as_primitive::<Int32Type>();
        let caption = batch
            .column_by_name("caption")
            .expect("caption")
            .as_string::<i32>();
        let crop = batch.column_by_name("crop").expect("crop").as_struct();
        let image = batch
            .column_by_name("image")
            .expect("image")
            .as_binary::<i32>();
        let f = |name: &str, i: usize| {
            crop.column_by_name(name)
                .expect("crop field")
                .as_primitive::<Float32Type>()
                .value(i)
        };
        let flip = crop.column_by_name("flip").expect("flip").as_boolean();
        for i in 0..batch.num_rows().min(n) {
            let cap = if caption.is_null(i) {
                "-".to_string()
            } else {
                caption.value(i).chars().take(48).collect()
            };
            let lab = if label.is_null(i) {
                "-".to_string()
            } else {
                label.value(i).to_string()
            };
            let _ = writeln!(
                out,
                "  {} view {} label {} crop ({:.0},{:.0} {:.0}x{:.0}{}) png {} caption {:?}",
                key.value(i),
                view.value(i),
                lab,
                f("left", i),
                f("top", i),
                f("width", i),
                f("height", i),
                if flip.value(i) { ", flipped" } else { "" },
                human_bytes(image.value(i).len() as u64),
                cap
            );
        }
    }
    Ok(())
}
