//! The sample order: which image (and which of its stored views) each global position of an
//! epoch names, and which positions a rank reads.

use maetok_nn::rng::SplitMix;

/// Where training is in the data: positions of the epoch's global order consumed by all
/// ranks together. Saved in checkpoints; a resumed job may change its world size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DataCursor {
    pub epoch: u64,
    pub position: u64,
}

/// One epoch's permutation of `images` under `seed`.
#[derive(Debug, Clone)]
pub struct Order {
    pub epoch: u64,
    perm: Vec<u32>,
}

impl Order {
    pub fn new(seed: u64, epoch: u64, images: usize) -> Self {
        let mut rng = SplitMix::for_view(
            seed,
            "maetok-loader-order",
            (epoch % u16::MAX as u64) as u16,
        );
        // Mix the full epoch in (the view slot above is only 16 bits).
        for _ in 0..(epoch / u16::MAX as u64) {
            rng.next_u64();
        }
        let mut perm: Vec<u32> = (0..images as u32).collect();
        for i in (1..perm.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            perm.swap(i, j);
        }
        Self { epoch, perm }
    }

    pub fn len(&self) -> usize {
        self.perm.len()
    }

    pub fn is_empty(&self) -> bool {
        self.perm.is_empty()
    }

    pub fn image_at(&self, position: u64) -> usize {
        self.perm[position as usize] as usize
    }
}

/// The stored view read for `image` in `epoch` (uniform over `views`).
pub fn view_of(seed: u64, epoch: u64, image: usize, views: u16) -> u16 {
    if views <= 1 {
        return 0;
    }
    let mut rng = SplitMix::for_view(
        seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        "maetok-loader-view",
        0,
    );
    for _ in 0..(image % 7) {
        rng.next_u64();
    }
    let mut r = SplitMix::for_view(rng.next_u64() ^ image as u64, "view", views);
    r.below(views as u64) as u16
}

/// Global positions rank `rank` of `world` reads for one step of `batch` per rank starting at
/// `cursor` (the global batch is `batch · world` consecutive positions; rank r takes those
/// with `position % world == r` relative to the cursor).
pub fn rank_positions(cursor: u64, batch: usize, rank: usize, world: usize) -> Vec<u64> {
    (0..batch)
        .map(|i| cursor + (rank + i * world) as u64)
        .collect()
}

/// The cursor after one global step; an epoch ends when a full global batch no longer fits
/// (the remainder is dropped, as `drop_last` does).
pub fn advance(c: DataCursor, batch: usize, world: usize, images: usize) -> DataCursor {
    let step = (batch * world) as u64;
    let next = DataCursor {
        epoch: c.epoch,
        position: c.position + step,
    };
    if next.position + step > images as u64 {
        DataCursor {
            epoch: c.epoch + 1,
            position: 0,
        }
    } else {
        next
    }
}

/// Whether a loader over the `images` images (or their latents) of `dir` can start at `start` with `batch` per
/// rank as rank `rank` of `world`: one global batch must fit, and a saved cursor must lie
/// inside the data (else it was saved on other data).
pub fn check_start(
    dir: &std::path::Path,
    images: usize,
    batch: usize,
    (rank, world): (usize, usize),
    start: DataCursor,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        world >= 1 && rank < world,
        "rank {rank} must be below world {world}"
    );
    anyhow::ensure!(
        images >= batch * world,
        "{}: {images} images cannot fill one global batch of {batch} × {world}",
        dir.display()
    );
    anyhow::ensure!(
        start.position + (batch * world) as u64 <= images as u64,
        "{}: the saved data cursor (epoch {}, position {}) lies past the {images} images \
         of this folder: it is not the dataset the run was saved on",
        dir.display(),
        start.epoch,
        start.position
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_are_permutations_seeded_by_epoch() {
        let a = Order::new(7, 0, 1000);
        let mut seen: Vec<usize> = (0..1000).map(|p| a.image_at(p)).collect();
        seen.sort();
        assert_eq!(seen, (0..1000).collect::<Vec<_>>());
        let b = Order::new(7, 1, 1000);
        assert!((0..1000).any(|p| a.image_at(p) != b.image_at(p)));
        let a2 = Order::new(7, 0, 1000);
        assert!((0..1000).all(|p| a.image_at(p) == a2.image_at(p)));
    }

    #[test]
    fn ranks_split_the_global_batch() {
        let r0 = rank_positions(40, 4, 0, 2);
        let r1 = rank_positions(40, 4, 1, 2);
        let mut all: Vec<u64> = r0.iter().chain(&r1).copied().collect();
        all.sort();
        assert_eq!(all, (40..48).collect::<Vec<_>>());
        assert_eq!(
            advance(
                DataCursor {
                    epoch: 0,
                    position: 40
                },
                4,
                2,
                100
            ),
            DataCursor {
                epoch: 0,
                position: 48
            }
        );
        assert_eq!(
            advance(
                DataCursor {
                    epoch: 0,
                    position: 88
                },
                4,
                2,
                100
            ),
            DataCursor {
                epoch: 1,
                position: 0
            }
        );
    }

    #[test]
    fn views_are_spread_and_fixed() {
        let v: Vec<u16> = (0..400).map(|i| view_of(3, 0, i, 4)).collect();
        for k in 0..4 {
            let n = v.iter().filter(|&&x| x == k).count();
            assert!((70..130).contains(&n), "view {k}: {n}");
        }
        assert_eq!(v, (0..400).map(|i| view_of(3, 0, i, 4)).collect::<Vec<_>>());
    }
}
