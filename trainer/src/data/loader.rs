//! The shard loader: batches of (image, stored targets) for rank r, produced ahead of the
//! training step on a background thread.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use maetok_pipeline::shard::reader::{Rows, ShardFolder, TargetColumn};
use rayon::prelude::*;
use tch::Tensor;

use maetok_models::maetok::images_to_input;

use super::index::{advance, check_start, rank_positions, view_of, DataCursor, Order};
use super::prefetch::{in_order, Prefetch};

#[derive(Debug, Clone)]
pub struct LoaderConfig {
    pub dir: PathBuf,
    /// Samples per rank per step.
    pub batch_size: usize,
    pub seed: u64,
    pub rank: usize,
    pub world: usize,
    /// Target columns to read (`hog`, `dinov2`, `siglip`, `clip`).
    pub targets: Vec<String>,
    /// Batches prepared ahead.
    pub prefetch: usize,
    /// Read the captions' BPE ids (`text_ids`).
    pub text: bool,
    /// Threads decoding a batch's PNGs (1: the loader thread alone). More only pays when
    /// the cores are not libtorch's, as on a GPU machine.
    pub decode_threads: usize,
    /// Check every shard's sha256 against the manifest before the first batch (sizes are
    /// always checked).
    pub verify: bool,
}

/// One rank's batch.
pub struct Batch {
    /// The global cursor after this step (what a checkpoint saved after it records).
    pub cursor_after: DataCursor,
    pub keys: Vec<String>,
    pub views: Vec<i16>,
    pub labels: Vec<Option<i32>>,
    /// (B, 3, H, W) in [-1, 1].
    pub images: Tensor,
    /// Per requested target, (B, tokens, dim) f32 (int8 storage dequantised).
    pub targets: Vec<(String, Tensor)>,
    /// Caption BPE ids per image (empty without a caption, or when not requested).
    pub text_ids: Vec<Vec<i32>>,
}

/// A batch as the background thread builds it: plain buffers, no libtorch. Tensors are made
/// on the training thread in `next_batch`. Why: any libtorch op on the loader thread (even
/// the fill behind `Tensor::from_slice`) starts a second OpenMP team there, whose threads
/// spin-wait on the cores libtorch's main team computes on; at 2 threads on 2 cores that
/// halved the step rate.
struct RawBatch {
    cursor_after: DataCursor,
    keys: Vec<String>,
    views: Vec<i16>,
    labels: Vec<Option<i32>>,
    /// (B, H, W, 3) RGB bytes.
    pixels: Vec<u8>,
    side: (i64, i64),
    /// Per requested target: (name, tokens, dim, values).
    targets: Vec<(String, i64, i64, Vec<f32>)>,
    text_ids: Vec<Vec<i32>>,
}

impl RawBatch {
    fn into_batch(self) -> Batch {
        let n = self.keys.len() as i64;
        let (w, h) = self.side;
        let images = images_to_input(&Tensor::from_slice(&self.pixels).reshape([n, h, w, 3]));
        let targets = self
            .targets
            .into_iter()
            .map(|(name, tokens, dim, v)| (name, Tensor::from_slice(&v).reshape([n, tokens, dim])))
            .collect();
        Batch {
            cursor_after: self.cursor_after,
            keys: self.keys,
            views: self.views,
            labels: self.labels,
            images: images.contiguous(),
            targets,
            text_ids: self.text_ids,
        }
    }
}

/// Where each image lives.
struct Index {
    folder: ShardFolder,
    /// First global image of each shard, plus the total at the end.
    starts: Vec<usize>,
    views: u16,
    targets: Vec<TargetColumn>,
    text: bool,
}

impl Index {
    fn open(cfg: &LoaderConfig) -> anyhow::Result<Self> {
        let folder = ShardFolder::open(&cfg.dir)?;
        let m = folder.manifest();
        if !m.complete {
            bail!(
                "{}: the preprocess job has not finished (manifest not complete)",
                cfg.dir.display()
            );
        }
        folder.check_files(cfg.verify)?;
        let views = folder.views();
        let mut starts = vec![0usize];
        for s in &m.shards {
            anyhow::ensure!(
                s.rows == s.images * views as u64,
                "{}: {} rows for {} images of {views} views",
                s.file,
                s.rows,
                s.images
            );
            starts.push(starts.last().copied().unwrap_or(0) + s.images as usize);
        }
        let targets = cfg
            .targets
            .iter()
            .map(|name| folder.target(name))
            .collect::<Result<Vec<_>, _>>()?;
        if cfg.text && m.text.is_none() {
            bail!(
                "{}: the shards carry no captions (`text_ids`): preprocess with \
                 `caption_bpe` set, or drop the caption target",
                cfg.dir.display()
            );
        }
        Ok(Self {
            folder,
            starts,
            views,
            targets,
            text: cfg.text,
        })
    }

    fn images(&self) -> usize {
        *self.starts.last().unwrap_or(&0)
    }

    /// (shard, row) of view `v` of global image `g`.
    fn locate(&self, g: usize, v: u16) -> (usize, usize) {
        let s = self.starts.partition_point(|&x| x <= g) - 1;
        (s, (g - self.starts[s]) * self.views as usize + v as usize)
    }
}

/// Build rank `cfg.rank`'s batch at `cursor`.
fn make_batch(
    ix: &Index,
    cfg: &LoaderConfig,
    order: &Order,
    cursor: DataCursor,
    pool: Option<&rayon::ThreadPool>,
) -> anyhow::Result<RawBatch> {
    let positions = rank_positions(cursor.position, cfg.batch_size, cfg.rank, cfg.world);
    let wanted: Vec<(usize, usize)> = positions
        .iter()
        .map(|&p| {
            let g = order.image_at(p);
            ix.locate(g, view_of(cfg.seed, cursor.epoch, g, ix.views))
        })
        .collect();
    let mut by_shard: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for &(s, r) in &wanted {
        by_shard.entry(s).or_default().push(r);
    }
    let mut columns: Vec<String> = ["key", "view", "label", "image"].map(String::from).to_vec();
    for t in &ix.targets {
        columns.extend(t.columns());
    }
    if ix.text {
        columns.push("text_ids".into());
    }
    // (shard, row) -> (rows, index in rows)
    let mut found: BTreeMap<(usize, usize), (Arc<Rows>, usize)> = BTreeMap::new();
    for (s, mut rows) in by_shard {
        rows.sort_unstable();
        rows.dedup();
        let batches = ix.folder.read_rows(s, &rows, &columns).with_context(|| {
            format!(
                "reading rows {rows:?} of {}",
                ix.folder.shard_path(s).display()
            )
        })?;
        let mut it = rows.iter();
        for b in batches {
            let b = Arc::new(b);
            for i in 0..b.len() {
                let r = *it
                    .next()
                    .context("parquet returned more rows than selected")?;
                found.insert((s, r), (b.clone(), i));
            }
        }
    }
    let n = wanted.len();
    let (mut keys, mut views, mut labels) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let mut pngs: Vec<&[u8]> = Vec::with_capacity(n);
    let mut target_vals: Vec<Vec<f32>> = vec![Vec::new(); ix.targets.len()];
    let mut text_ids = Vec::new();
    for sr in &wanted {
        let (b, i) = found.get(sr).context("a selected row was not returned")?;
        let i = *i;
        let at = || format!("{} row {}", ix.folder.shard_path(sr.0).display(), sr.1);
        let mut row = || -> anyhow::Result<()> {
            let key = b.key(i)?;
            keys.push(key.to_string());
            views.push(b.view(i)?);
            labels.push(b.label(i)?);
            pngs.push(b.image(i)?.context("no image")?);
            for (k, t) in ix.targets.iter().enumerate() {
                target_vals[k].extend(b.target(t, i)?);
            }
            if ix.text {
                text_ids.push(b.text_ids(i)?);
            }
            Ok(())
        };
        row().with_context(at)?;
    }
    let decode = |(k, png): (usize, &&[u8])| {
        image::load_from_memory(png)
            .map(|i| i.into_rgb8())
            .with_context(|| {
                let (s, r) = wanted[k];
                format!(
                    "{}: {} row {r}: the stored view does not decode",
                    keys[k],
                    ix.folder.shard_path(s).display()
                )
            })
    };
    let images = match pool {
        Some(pool) => pool.install(|| {
            pngs.par_iter()
                .enumerate()
                .map(decode)
                .collect::<anyhow::Result<Vec<_>>>()
        }),
        None => pngs.iter().enumerate().map(decode).collect(),
    }?;
    let side = images.first().map_or((0, 0), |i| i.dimensions());
    let mut pixels: Vec<u8> = Vec::with_capacity(n * (side.0 * side.1 * 3) as usize);
    for (img, key) in images.iter().zip(&keys) {
        anyhow::ensure!(
            img.dimensions() == side,
            "{key}: a {}×{} view in a batch of {}×{} views (shards of one resolution only)",
            img.width(),
            img.height(),
            side.0,
            side.1
        );
        pixels.extend_from_slice(img.as_raw());
    }
    let targets = ix
        .targets
        .iter()
        .zip(target_vals)
        .map(|(t, v)| (t.name.clone(), t.tokens as i64, t.dim as i64, v))
        .collect();
    Ok(RawBatch {
        cursor_after: advance(cursor, cfg.batch_size, cfg.world, ix.images()),
        keys,
        views,
        labels,
        pixels,
        side: (side.0 as i64, side.1 as i64),
        targets,
        text_ids,
    })
}

/// Batches from `start` on, prepared by a background thread.
pub struct Loader {
    prefetch: Prefetch<RawBatch>,
    pub images: usize,
}

impl Loader {
    pub fn start(cfg: LoaderConfig, start: DataCursor) -> anyhow::Result<Self> {
        let ix = Index::open(&cfg)?;
        let images = ix.images();
        check_start(
            &cfg.dir,
            images,
            cfg.batch_size,
            (cfg.rank, cfg.world),
            start,
        )?;
        // Decode workers, when asked for; they never touch libtorch either.
        let rank = cfg.rank;
        let pool = match cfg.decode_threads {
            0 | 1 => None,
            n => Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .thread_name(move |i| format!("decode-r{rank}-{i}"))
                    .build()
                    .with_context(|| format!("starting {n} decode threads"))?,
            ),
        };
        let prefetch = in_order(
            format!("loader-r{rank}"),
            cfg.prefetch,
            (cfg.seed, images),
            start,
            |b: &RawBatch| b.cursor_after,
            move |order, cursor| make_batch(&ix, &cfg, order, cursor, pool.as_ref()),
        )?;
        Ok(Self { prefetch, images })
    }

    /// The next batch (errors end the stream).
    pub fn next_batch(&self) -> anyhow::Result<Batch> {
        self.prefetch.next().map(RawBatch::into_batch)
    }
}
