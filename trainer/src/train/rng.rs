//! Training randomness, keyed so that neither a resume nor the number of processes changes
//! it (ARCHITECTURE §6):
//!
//! * per-step draws (mask ratio, DiffAugment coins, the discriminator's crop) come from the
//!   generator of (seed, step, stream): `step_rng`;
//! * per-sample draws (mask positions, DiffAugment offsets and factors, LPIPS dropout) come from the
//!   generator of (seed, step, stream, global sample index): `sample_rng`, where the index
//!   is the sample's place in the step's global batch (`Ranks::global_rows`). Rank r of W
//!   holds global rows r, r + W, …, so each sample gets the same draws on 1 or N processes.
//!
//! Both are reached directly (SplitMix is counter-based), so a run resumed at step s makes
//! exactly the draws an uninterrupted run makes there, without saving generator state.
//! LPIPS dropout masks come from libtorch's generator (they are the size of VGG's feature
//! maps, drawn on the device), seeded per sample and stage from the sample's key of
//! `Stream::Dropout`, so they too depend on the sample alone. The global generator is also
//! seeded per step (`seed_torch`) for any other libtorch draw; none is made in a step today.

pub use maetok_nn::rng::SplitMix;

/// What a step's draws are for; each gets its own generator.
#[derive(Debug, Clone, Copy)]
#[repr(u64)]
pub enum Stream {
    /// Mask ratio and positions.
    Mask = 1,
    /// libtorch's global generator (dropout, `randn` inside losses).
    Torch = 2,
    /// DiffAugment coins, offsets and factors.
    Augment = 3,
    /// Weight initialisation of a fresh run.
    Init = 4,
    /// The discriminator's input crops.
    Crop = 5,
    /// LPIPS heads' dropout masks (one key per sample, seeding libtorch's generator).
    Dropout = 6,
    /// SiT: each sample's time draw.
    Time = 7,
    /// SiT: each sample's noise ε (one key per sample, seeding libtorch's generator).
    Noise = 8,
    /// SiT: each sample's label-dropout coin.
    LabelDrop = 9,
    /// SiT: the sample grid's fixed noise (step 0 only).
    Grid = 10,
    /// Sampling: the SDE's per-step noise of each sample (the "step" is the sampler's).
    SdeNoise = 11,
    /// Sampling: each sample's initial noise and class (`maetok sample`).
    Sample = 12,
}

/// The generator of `stream` at `step` of a run seeded with `seed`.
pub fn step_rng(seed: u64, step: u64, stream: Stream) -> SplitMix {
    let mut mix = SplitMix::new(seed ^ (stream as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93));
    let a = mix.next_u64();
    SplitMix::new(a ^ step.wrapping_mul(0xA076_1D64_78BD_642F))
}

/// The generator of one sample's draws of `stream` at `step`: `index` is the sample's place
/// in the step's global batch.
pub fn sample_rng(seed: u64, step: u64, stream: Stream, index: u64) -> SplitMix {
    // A second stream id keeps per-sample generators apart from the per-step one.
    let base = step_rng(seed, step, stream).next_u64() ^ 0x5851_F42D_4C95_7F2D;
    let mut key = SplitMix::new(base ^ index.wrapping_mul(0xE703_7ED1_A0B4_28DB));
    SplitMix::new(key.next_u64())
}

/// One generator per row of a batch whose rows are the global samples `indices`.
pub fn sample_rngs(seed: u64, step: u64, stream: Stream, indices: &[u64]) -> Vec<SplitMix> {
    indices
        .iter()
        .map(|&i| sample_rng(seed, step, stream, i))
        .collect()
}

/// Seed libtorch's global generator for `step` (its state is then a function of the step).
pub fn seed_torch(seed: u64, step: u64) {
    seed_torch_for(seed, step, Stream::Torch);
}

/// Seed libtorch's global generator from `(seed, step, stream)`.
pub fn seed_torch_for(seed: u64, step: u64, stream: Stream) {
    let s = step_rng(seed, step, stream).next_u64();
    tch::manual_seed((s >> 1) as i64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_and_steps_differ_and_repeat() {
        let a = step_rng(7, 10, Stream::Mask).next_u64();
        assert_eq!(a, step_rng(7, 10, Stream::Mask).next_u64());
        assert_ne!(a, step_rng(7, 11, Stream::Mask).next_u64());
        assert_ne!(a, step_rng(7, 10, Stream::Augment).next_u64());
        assert_ne!(a, step_rng(8, 10, Stream::Mask).next_u64());
        let mut r = SplitMix::new(3);
        let m = (0..100_000).map(|_| r.uniform()).sum::<f64>() / 100_000.0;
        assert!((m - 0.5).abs() < 0.01, "{m}");
    }

    /// A sample's generator depends on its global index only: the rows rank 1 of 2 holds
    /// draw what the same rows draw in a 1-process batch.
    #[test]
    fn sample_draws_follow_the_global_index() {
        let one = sample_rngs(7, 3, Stream::Mask, &[0, 1, 2, 3]);
        let rank1 = sample_rngs(7, 3, Stream::Mask, &[1, 3]);
        let first = |v: &[SplitMix]| v.iter().map(|r| r.clone().next_u64()).collect::<Vec<_>>();
        let (one, rank1) = (first(&one), first(&rank1));
        assert_eq!(rank1, [one[1], one[3]]);
        assert_ne!(one[0], one[1]);
        assert_ne!(one[0], sample_rng(7, 4, Stream::Mask, 0).next_u64());
        assert_ne!(one[0], sample_rng(7, 3, Stream::Augment, 0).next_u64());
        assert_ne!(one[0], step_rng(7, 3, Stream::Mask).next_u64());
    }
}
