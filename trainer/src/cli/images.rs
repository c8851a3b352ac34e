//! Images for the model commands (`teacher features`, `encode`, `reconstruct`): a folder or
//! WebDataset tar(s) decoded and ADM-center-cropped in sorted key order, or the stored view-0
//! images of a shard folder.

use std::path::Path;

use anyhow::Context;
use arrow::array::{Array, AsArray};
use maetok_pipeline::image::decode::{decode_rgb8, DecodeOptions};
use maetok_pipeline::image::views::adm_center_crop;
use maetok_pipeline::image::Rgb8;
use maetok_pipeline::source::{Dataset, Event, FolderLayout, SourceOptions};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rayon::prelude::*;

/// Keyed square images at one resolution, and how many inputs were skipped.
pub struct Images {
    pub keys: Vec<String>,
    pub images: Vec<Rgb8>,
    pub skipped: usize,
}

/// `input` is a shard folder (has `manifest.json`) or a raw source.
pub fn load(input: &str, resolution: usize) -> anyhow::Result<Images> {
    if Path::new(input).join("manifest.json").is_file() {
        shard_views(Path::new(input), resolution)
    } else {
        adm_crops(input, resolution)
    }
}

/// Decode and ADM-crop every image of a folder / tar source, sorted by key.
pub fn adm_crops(input: &str, resolution: usize) -> anyhow::Result<Images> {
    let options = SourceOptions {
        layout: FolderLayout::Auto,
        labels_csv: None,
        caption_fields: vec!["caption".into()],
    };
    let ds = Dataset::open(&[input.to_string()], options, 0, 1)
        .with_context(|| format!("reading {input}"))?;
    let mut samples = Vec::new();
    let mut skipped = 0usize;
    ds.for_each_event(Default::default(), |p| {
        match p.event {
            Some(Event::Sample(s)) => samples.push((s.key, s.bytes)),
            Some(Event::Reject(r)) => {
                tracing::warn!(key = %r.key, reason = %r.reason, "skipped");
                skipped += 1;
            }
            None => {}
        }
        true
    });
    samples.sort_by(|x, y| x.0.cmp(&y.0));
    let decoded: Vec<(String, Result<Rgb8, String>)> = samples
        .into_par_iter()
        .map(|(key, bytes)| {
            let img = decode_rgb8(&bytes, &DecodeOptions::default())
                .map(|d| adm_center_crop(&d.image, resolution).0)
                .map_err(|e| e.to_string());
            (key, img)
        })
        .collect();
    let (mut keys, mut images) = (Vec::new(), Vec::new());
    for (key, img) in decoded {
        match img {
            Ok(v) => {
                keys.push(key);
                images.push(v);
            }
            Err(e) => {
                tracing::warn!(%key, error = %e, "skipped");
                skipped += 1;
            }
        }
    }
    anyhow::ensure!(!images.is_empty(), "no decodable images in {input}");
    Ok(Images {
        keys,
        images,
        skipped,
    })
}

/// The view-0 images (the ADM crops) of a shard folder, in shard order.
fn shard_views(dir: &Path, resolution: usize) -> anyhow::Result<Images> {
    let m = maetok_pipeline::shard::manifest::Manifest::read(&dir.join("manifest.json"))?;
    let stored = m.preprocess["resolution"].as_u64().unwrap_or(0) as usize;
    anyhow::ensure!(
        stored == resolution,
        "{} holds {stored} px views but the checkpoint works at {resolution} px",
        dir.display()
    );
    let (mut keys, mut images) = (Vec::new(), Vec::new());
    for s in &m.shards {
        let file = std::fs::File::open(dir.join(&s.file))
            .with_context(|| format!("opening {}", s.file))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)?.build()?;
        for batch in reader {
            let batch = batch?;
            let key = batch
                .column_by_name("key")
                .context("key column")?
                .as_string::<i32>();
            let view = batch
                .column_by_name("view")
                .context("view column")?
                .as_primitive::<arrow::datatypes::Int16Type>();
            let png = batch
                .column_by_name("image")
                .context("image column")?
                .as_binary::<i32>();
            for i in 0..batch.num_rows() {
                if view.value(i) != 0 || png.is_null(i) {
                    continue;
                }
                let img = image::load_from_memory(png.value(i))?.into_rgb8();
                let (w, h) = img.dimensions();
                keys.push(key.value(i).to_string());
                images.push(Rgb8::new(w as usize, h as usize, img.into_raw()));
            }
        }
    }
    anyhow::ensure!(!images.is_empty(), "no view-0 rows in {}", dir.display());
    Ok(Images {
        keys,
        images,
        skipped: 0,
    })
}

/// One f32 tensor `name` plus metadata `keys` (JSON array) and one more JSON entry, written to
/// a temporary name and renamed.
pub fn write_keyed(
    path: &Path,
    name: &str,
    t: &tch::Tensor,
    keys: &[String],
    (meta_key, meta): (&str, serde_json::Value),
) -> anyhow::Result<()> {
    let t = t.to_kind(tch::Kind::Float).contiguous();
    let n = t.numel();
    let mut data = vec![0f32; n];
    t.view([-1]).copy_data(&mut data, n);
    let bytes: &[u8] = bytemuck::cast_slice(&data);
    let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape, bytes)?;
    let metadata: std::collections::HashMap<String, String> = [
        ("keys".to_string(), serde_json::to_string(keys)?),
        (meta_key.to_string(), meta.to_string()),
    ]
    .into();
    let tmp = maetok_pipeline::atomic::temp_path(path);
    safetensors::serialize_to_file([(name, view)], Some(metadata), &tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    maetok_pipeline::atomic::commit(&tmp, path)
        .with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}
