//! The SiT loader (spec §6, §7.3): batches of cached latents for rank r, from latent shards
//! (`maetok encode`'s folder output) through `maetok_pipeline`'s latent reader. The same
//! order as the image loader: one seeded global permutation per epoch, rank r of w taking
//! every w-th sample of the global batch, a global cursor saved in checkpoints. Each sample
//! is the latent of its ADM crop or of its horizontal flip with probability ½, chosen from
//! (seed, epoch, image) (the official `CachedFolder` flips per access), and normalised
//! `(z − mean) / std` with the run's latent statistics.
//!
//! With `cache_bytes` > 0, a shard touched for the first time is decoded whole and kept in
//! memory while the budget lasts; later batches copy from it instead of reading Parquet
//! (on a 2-core machine the per-batch reads took about a tenth of a SiT-T step's CPU).
//! Shards past the budget are read row by row as before, so memory stays bounded.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

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
    /// Decoded shards kept in memory, at most this many bytes (0: none).
    pub cache_bytes: usize,
}

/// Whole decoded shards, each as the batches Parquet returned with their first rows.
struct ShardCache {
    shards: HashMap<usize, Vec<(usize, Arc<LatentRows>)>>,
    used: usize,
    budget: usize,
}

impl ShardCache {
    /// Rows `rows` (sorted, unique) of shard `s`, each as (batch, index in it): from the
    /// cache, by decoding the whole shard into it while the budget allows, or read alone.
    fn rows(
        &mut self,
        ix: &Index,
        s: usize,
        rows: &[usize],
    ) -> anyhow::Result<Vec<(Arc<LatentRows>, usize)>> {
        let in_shard = ix.starts[s + 1] - ix.starts[s];
        let [l, c] = ix.folder.manifest().latent_shape;
        // Two latents per row (crop, flip) and a key: what the decoded arrays hold.
        let bytes = in_shard * (2 * l * c * 4 + 64);
        let read = |rows: &[usize]| {
            ix.folder
                .read_rows(s, rows)
                .with_context(|| format!("reading rows of {}", ix.folder.shard_path(s).display()))
        };
        if !self.shards.contains_key(&s) && self.used + bytes <= self.budget {
            let all: Vec<usize> = (0..in_shard).collect();
            let mut first = 0;
            let mut parts = Vec::new();
            for b in read(&all)? {
                let n = b.len();
                parts.push((first, Arc::new(b)));
                first += n;
            }
            anyhow::ensure!(
                first == in_shard,
                "{}: {first} rows read, the manifest lists {in_shard}",
                ix.folder.shard_path(s).display()
            );
            self.used += bytes;
            self.shards.insert(s, parts);
        }
        if let Some(parts) = self.shards.get(&s) {
            return Ok(rows
                .iter()
                .map(|&r| {
                    let k = parts.partition_point(|(first, _)| *first <= r) - 1;
                    (parts[k].1.clone(), r - parts[k].0)
                })
                .collect());
        }
        let mut out = Vec::with_capacity(rows.len());
        for b in read(rows)? {
            let b = Arc::new(b);
            out.extend((0..b.len()).map(|i| (b.clone(), i)));
        }
        anyhow::ensure!(
            out.len() == rows.len(),
            "{}: parquet returned {} rows of {} selected",
            ix.folder.shard_path(s).display(),
            out.len(),
            rows.len()
        );
        Ok(out)
    }
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
    cache: &mut ShardCache,
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
    let mut found: BTreeMap<(usize, usize), (Arc<LatentRows>, usize)> = BTreeMap::new();
    for (s, mut rows) in by_shard {
        rows.sort_unstable();
        rows.dedup();
        for (&r, got) in rows.iter().zip(cache.rows(ix, s, &rows)?) {
            found.insert((s, r), got);
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
        let mut cache = ShardCache {
            shards: HashMap::new(),
            used: 0,
            budget: cfg.cache_bytes,
        };
        let prefetch = in_order(
            format!("latents-r{}", cfg.rank),
            cfg.prefetch,
            (cfg.seed, images),
            start,
            |b: &RawLatents| b.cursor_after,
            move |order, cursor| make_batch(&ix, &cfg, &mut cache, order, cursor),
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

#[cfg(test)]
mod tests {
    use super::*;
    use maetok_pipeline::shard::latent::LatentWriter;

    /// 23 latents of 3 × 2 in shards of 5 (the last one short), label i % 4.
    fn folder(dir: &std::path::Path) -> PathBuf {
        let out = dir.join("latents");
        let mut w = LatentWriter::create(&out, [3, 2], 5, serde_json::json!({"test": 1})).unwrap();
        for i in 0..23 {
            let z: Vec<f32> = (0..6).map(|j| (i * 10 + j) as f32).collect();
            let zf: Vec<f32> = z.iter().map(|v| -v).collect();
            w.push(format!("k{i:02}"), Some(i % 4), z, zf).unwrap();
        }
        w.finish().unwrap();
        out
    }

    fn batches(dir: &std::path::Path, cache_bytes: usize, n: usize) -> Vec<(Vec<String>, Tensor)> {
        let loader = LatentLoader::start(
            LatentLoaderConfig {
                dir: dir.to_path_buf(),
                batch_size: 4,
                seed: 7,
                rank: 0,
                world: 1,
                prefetch: 2,
                verify: true,
                num_classes: 4,
                normalize: (1.0, 2.0),
                cache_bytes,
            },
            DataCursor::default(),
        )
        .unwrap();
        (0..n)
            .map(|_| {
                let b = loader.next_batch().unwrap();
                (b.keys, b.latents)
            })
            .collect()
    }

    /// Batches over two epochs are the same with no cache, a cache holding two of the five
    /// shards, and one holding all; and they are the rows' normalised crop or flip.
    #[test]
    fn the_shard_cache_changes_no_batch() {
        let dir = tempfile::tempdir().unwrap();
        let f = folder(dir.path());
        let plain = batches(&f, 0, 12);
        // A row costs 2 · 6 · 4 + 64 = 112 bytes: 5-row shards 560.
        for budget in [1200, 1 << 20] {
            let cached = batches(&f, budget, 12);
            for ((ka, a), (kb, b)) in plain.iter().zip(&cached) {
                assert_eq!(ka, kb, "budget {budget}");
                assert!(a.equal(b), "budget {budget}");
            }
        }
        let (keys, z) = &plain[0];
        for (k, key) in keys.iter().enumerate() {
            let i: f64 = key[1..].parse().unwrap();
            let first = z.double_value(&[k as i64, 0, 0]) * 2.0 + 1.0;
            assert!(first == i * 10.0 || first == -i * 10.0, "{key}: {first}");
        }
    }
}
