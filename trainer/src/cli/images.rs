//! Images for the model commands (`teacher features`, `encode`, `reconstruct`): a folder or
//! WebDataset tar(s) decoded and ADM-center-cropped in sorted key order, or the stored view-0
//! images of a shard folder.

use std::path::Path;

use anyhow::Context;
use maetok_pipeline::image::decode::{decode_rgb8, DecodeOptions};
use maetok_pipeline::image::views::adm_center_crop;
use maetok_pipeline::image::Rgb8;
use maetok_pipeline::shard::reader::ShardFolder;
use maetok_pipeline::source::{Dataset, Event, FolderLayout, SourceOptions};
use rayon::prelude::*;

/// Keyed square images at one resolution, and how many inputs were skipped.
pub struct Images {
    pub keys: Vec<String>,
    pub images: Vec<Rgb8>,
    pub skipped: usize,
}

/// `input` is a shard folder (has `manifest.json`) or a raw source; every image in memory
/// (for inspection-sized inputs; `for_each_chunk` streams).
pub fn load(input: &str, resolution: usize) -> anyhow::Result<Images> {
    let (mut keys, mut images) = (Vec::new(), Vec::new());
    let skipped = for_each_chunk(input, resolution, 256, None, |c| {
        keys.extend(c.keys);
        images.extend(c.images);
        Ok(())
    })?;
    Ok(Images {
        keys,
        images,
        skipped,
    })
}

/// A chunk of keyed images (with labels where the source has them).
pub struct Chunk {
    pub keys: Vec<String>,
    pub labels: Vec<Option<i32>>,
    pub images: Vec<Rgb8>,
}

/// Streams `input` in chunks of `chunk` images, holding one decoded chunk at a time: a shard
/// folder's view-0 images in shard order, or a raw source's ADM crops in sorted key order
/// (its compressed bytes are read first, to sort them). Returns how many inputs were skipped.
pub fn for_each_chunk(
    input: &str,
    resolution: usize,
    chunk: usize,
    progress: Option<&str>,
    mut f: impl FnMut(Chunk) -> anyhow::Result<()>,
) -> anyhow::Result<usize> {
    let chunk = chunk.max(1);
    // Count, rate and ETA every few seconds (with `progress`, the command's name).
    let total = std::cell::Cell::new(0usize);
    let mut meter = progress.map(|what| Meter::new(what.to_string()));
    let mut f = |c: Chunk| -> anyhow::Result<()> {
        let n = c.keys.len();
        f(c)?;
        if let Some(m) = meter.as_mut() {
            m.advance(n, total.get());
        }
        Ok(())
    };
    let mut buf = Chunk {
        keys: Vec::new(),
        labels: Vec::new(),
        images: Vec::new(),
    };
    let emit = |buf: &mut Chunk, f: &mut dyn FnMut(Chunk) -> anyhow::Result<()>| {
        let full = std::mem::replace(
            buf,
            Chunk {
                keys: Vec::new(),
                labels: Vec::new(),
                images: Vec::new(),
            },
        );
        if full.keys.is_empty() {
            Ok(())
        } else {
            f(full)
        }
    };
    let mut seen = 0usize;
    if maetok_pipeline::shard::is_shard_folder(Path::new(input)) {
        let dir = Path::new(input);
        let folder = ShardFolder::open(dir)?;
        let stored = folder.resolution();
        anyhow::ensure!(
            stored == resolution,
            "{} holds {stored} px views but the checkpoint works at {resolution} px",
            dir.display()
        );
        total.set(folder.manifest().stats.images as usize);
        let columns = ["key", "view", "label", "image"].map(String::from);
        for rows in folder.read_all(Some(&columns)) {
            let rows = rows?;
            for i in 0..rows.len() {
                if rows.view(i)? != 0 {
                    continue;
                }
                let Some(png) = rows.image(i)? else { continue };
                let img = image::load_from_memory(png)?.into_rgb8();
                let (w, h) = img.dimensions();
                buf.keys.push(rows.key(i)?.to_string());
                buf.labels.push(rows.label(i)?);
                buf.images
                    .push(Rgb8::new(w as usize, h as usize, img.into_raw()));
                seen += 1;
                if buf.keys.len() == chunk {
                    emit(&mut buf, &mut f)?;
                }
            }
        }
        emit(&mut buf, &mut f)?;
        anyhow::ensure!(seen > 0, "no view-0 rows in {}", dir.display());
        return Ok(0);
    }
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
            Some(Event::Sample(s)) => samples.push((s.key, s.label, s.bytes)),
            Some(Event::Reject(r)) => {
                tracing::warn!(key = %r.key, reason = %r.reason, "skipped");
                skipped += 1;
            }
            None => {}
        }
        true
    });
    samples.sort_by(|x, y| x.0.cmp(&y.0));
    total.set(samples.len());
    for part in samples.chunks(chunk) {
        let decoded: Vec<(String, Option<i32>, Result<Rgb8, String>)> = part
            .par_iter()
            .map(|(key, label, bytes)| {
                let img = decode_rgb8(bytes, &DecodeOptions::default())
                    .map(|d| adm_center_crop(&d.image, resolution).0)
                    .map_err(|e| e.to_string());
                (key.clone(), *label, img)
            })
            .collect();
        for (key, label, img) in decoded {
            match img {
                Ok(v) => {
                    buf.keys.push(key);
                    buf.labels.push(label);
                    buf.images.push(v);
                    seen += 1;
                }
                Err(e) => {
                    tracing::warn!(%key, error = %e, "skipped");
                    skipped += 1;
                }
            }
        }
        emit(&mut buf, &mut f)?;
    }
    anyhow::ensure!(seen > 0, "no decodable images in {input}");
    Ok(skipped)
}

/// Progress of a command over its images: a log line every 5 s and at the end.
struct Meter {
    what: String,
    done: usize,
    start: std::time::Instant,
    last: std::time::Instant,
}

impl Meter {
    fn new(what: String) -> Self {
        let now = std::time::Instant::now();
        Self {
            what,
            done: 0,
            start: now,
            last: now,
        }
    }

    fn advance(&mut self, n: usize, total: usize) {
        self.done += n;
        let end = self.done >= total;
        if self.last.elapsed().as_secs_f64() < 5.0 && !end {
            return;
        }
        self.last = std::time::Instant::now();
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        let rate = self.done as f64 / secs;
        let eta = total.saturating_sub(self.done) as f64 / rate.max(1e-9);
        tracing::info!(
            "{}: {}/{total} images, {rate:.1} images/s, ETA {}",
            self.what,
            self.done,
            maetok_trainer::run::meter::fmt_eta(eta)
        );
    }
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
    let tmp = maetok_nn::atomic::temp_path(path);
    safetensors::serialize_to_file([(name, view)], Some(metadata), &tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    maetok_nn::atomic::commit(&tmp, path)
        .with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}
