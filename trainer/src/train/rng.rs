//! Training randomness that a resume reproduces without saving generator state: every
//! draw of step `s` comes from a generator seeded by `(seed, s, stream)`, so a run resumed
//! at step `s` makes exactly the draws an uninterrupted run makes there.

/// SplitMix64: tiny, fast, and good enough for mask positions and augmentation coins.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What a step's draws are for; each gets its own generator.
#[derive(Debug, Clone, Copy)]
#[repr(u64)]
pub enum Stream {
    /// Mask ratio and positions.
    Mask = 1,
    /// libtorch's global generator (dropout, `randn` inside losses).
    Torch = 2,
    /// DiffAugment coins and offsets.
    Augment = 3,
    /// Weight initialisation of a fresh run.
    Init = 4,
    /// The discriminator's input crops.
    Crop = 5,
}

/// The generator of `stream` at `step` of a run seeded with `seed`.
pub fn step_rng(seed: u64, step: u64, stream: Stream) -> SplitMix {
    let mut mix = SplitMix::new(seed ^ (stream as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93));
    let a = mix.next_u64();
    SplitMix::new(a ^ step.wrapping_mul(0xA076_1D64_78BD_642F))
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
}
