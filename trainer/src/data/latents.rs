//! The SiT loader (spec §6, §7.3): batches of cached latents for rank r, from latent shards
//! (`maetok encode`'s folder output) through `maetok_pipeline`'s latent reader. The same
//! order as the image loader: one seeded global permutation per epoch, rank r of w taking
//! every w-th sample of the global batch, a global cursor saved in checkpoints. Each sample
//! is the latent of its ADM crop or of its horizontal flip with probability ½, chosen from
//! (seed, epoch, image) (the official `CachedFolder` flips per access), and normalised
//! `(z − mean) / std` with the run's latent statistics.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use maetok_pipeline::shard::latent::{LatentFolder, LatentRows};
use tch::Tensor;

use super::index::{advance, check_start, rank_positions, view_of, DataCursor, Order};
use super::prefetch::{in_order, Prefetch};

#[derive(Debug, Clone)]
pub struct LatentLoaderConfig {
    pub dir: PathBuf,
    /// Samples per rank per step.
    pub batch_size: usize,
    pub seed: u64,
    pub rank: usize,
    pub world: usize,
    pub prefetch: usize,
    /// Check every shard's sha256 against the manifest first (row counts always are).
    pub verify: bool,
    /// Labels must lie in `0..num_classes`.
    pub num_classes: i64,
    /// (mean, std): the model sees `(z − mean) / std`.
    pub normalize: (f64, f64),
}

/// One rank's batch.
pub struct LatentBatch {
    pub cursor_after: DataCursor,
    pub keys: Vec<String>,
    /// Whether each sample is the flipped image's latent.
    pub flipped: Vec<bool>,
    /// (B, L, C) f32, normalised.
    pub latents: Tensor,
    /// (B,) i64.
    pub labels: Tensor,
}

struct RawLatents {
    cursor_after: DataCursor,
    keys: Vec<String>,
    flipped: Vec<bool>,
    values: Vec<f32>,
    labels: Vec<i64>,
    shape: [usize; 2],
}

struct Index {
    folder: LatentFolder,
    starts: Vec<usize>,
}

impl Index {
    fn images(&self) -> usize {
        *self.starts.last().unwrap_or(&0)
    }

    fn locate(&self, g: usize) -> (usize, usize) {
        let s = self.starts.partition_point(|&x| x <= g) - 1;
        (s, g - self.starts[s])
    }
}

fn make_batch(
    ix: &Index,
    cfg: &LatentLoaderConfig,
    order: &Order,
    cursor: DataCursor,
) -> anyhow::Result<RawLatents> {
    let positions = rank_positions(cursor.position, cfg.batch_size, cfg.rank, cfg.world);
    let images: Vec<usize> = positions.iter().map(|&p| order.image_at(p)).collect();
    let mut by_shard: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for &g in &images {
        let (s, r) = ix.locate(g);
        by_shard.entry(s).or_default().push(r);
    }
    let mut found: BTreeMap<(usize, usize), (std::rc::Rc<LatentRows>, usize)> = BTreeMap::new();
    for (s, mut rows) in by_shard {
        rows.sort_unstable();
        rows.dedup();
        let batches = ix
            .folder
            .read_rows(s, &rows)
            .with_context(|| format!("reading rows of {}", ix.folder.shard_path(s).display()))?;
        let mut it = rows.iter();
        for b in batches {
            let b = std::rc::Rc::new(b);
            for i in 0..b.len() {
                let r = *it
                    .next()
                    .context("parquet returned more rows than selected")?;
                found.insert((s, r), (b.clone(), i));
            }
        }
    }
    let shape = ix.folder.manifest().latent_shape;
    let (mean, std) = (cfg.normalize.0 as f32, cfg.normalize.1 as f32);
    let n = images.len();
    let mut raw = RawLatents {
        cursor_after: advance(cursor, cfg.batch_size, cfg.world, ix.images()),
        keys: Vec::with_capacity(n),
        flipped: Vec::with_capacity(n),
        values: Vec::with_capacity(n * shape[0] * shape[1]),
        labels: Vec::with_capacity(n),
        shape,
    };
    for &g in &images {
        let (s, r) = ix.locate(g);
        let (b, i) = found
            .get(&(s, r))
            .context("a selected row was not returned")?;
        let at = || format!("{} row {r}", ix.folder.shard_path(s).display());
        let flip = view_of(cfg.seed, cursor.epoch, g, 2) == 1;
        let key = b.key(*i).with_context(at)?;
        let label = b.label(*i).with_context(at)?.with_context(|| {
            format!(
                "{}: `{key}` has no class label; class-conditional SiT training needs one per \
                 latent (encode an ImageFolder or labelled shards)",
                at()
            )
        })?;
        anyhow::ensure!(
            (0..cfg.num_classes).contains(&(label as i64)),
            "{}: `{key}` has label {label}, outside the model's {} classes",
            at(),
            cfg.num_classes
        );
        let z = if flip {
            b.latent_flip(*i)
        } else {
            b.latent(*i)
        }
        .with_context(at)?;
        raw.values.extend(z.iter().map(|v| (v - mean) / std));
        raw.keys.push(key.to_string());
        raw.flipped.push(flip);
        raw.labels.push(label as i64);
    }
    Ok(raw)
}

/// Latent batches from `start` on, prepared by a background thread.
pub struct LatentLoader {
    prefetch: Prefetch<RawLatents>,
    pub images: usize,
    /// (L, C) of each latent.
    pub latent_shape: [usize; 2],
}

impl LatentLoader {
    pub fn start(cfg: LatentLoaderConfig, start: DataCursor) -> anyhow::Result<Self> {
        let folder = LatentFolder::open(&cfg.dir)
            .with_context(|| format!("opening the latent folder {}", cfg.dir.display()))?;
        folder.check_files(cfg.verify)?;
        let mut starts = vec![0usize];
        for rows in folder.shard_images() {
            starts.push(starts.last().copied().unwrap_or(0) + rows);
        }
        let latent_shape = folder.manifest().latent_shape;
        let ix = Index { folder, starts };
        let images = ix.images();
        check_start(
            &cfg.dir,
            images,
            cfg.batch_size,
            (cfg.rank, cfg.world),
            start,
        )?;
        anyhow::ensure!(
            cfg.normalize.1 > 0.0 && cfg.normalize.1.is_finite() && cfg.normalize.0.is_finite(),
            "latent statistics (mean {}, std {}) cannot normalise",
            cfg.normalize.0,
            cfg.normalize.1
        );
        let prefetch = in_order(
            format!("latents-r{}", cfg.rank),
            cfg.prefetch,
            (cfg.seed, images),
            start,
            |b: &RawLatents| b.cursor_after,
            move |order, cursor| make_batch(&ix, &cfg, order, cursor),
        )?;
        Ok(Self {
            prefetch,
            images,
            latent_shape,
        })
    }

    pub fn next_batch(&self) -> anyhow::Result<LatentBatch> {
        let raw = self.prefetch.next()?;
        let [l, c] = raw.shape;
        let n = raw.keys.len() as i64;
        Ok(LatentBatch {
            cursor_after: raw.cursor_after,
            latents: Tensor::from_slice(&raw.values).reshape([n, l as i64, c as i64]),
            labels: Tensor::from_slice(&raw.labels),
            keys: raw.keys,
            flipped: raw.flipped,
        })
    }
}
