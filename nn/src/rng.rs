//! Deterministic per-view randomness: a generator seeded from (seed, key, view) alone, so
//! views do not depend on thread scheduling, node count or where a resumed job restarted.
//! The construction is fixed (FNV-1a over the key, SplitMix64 mixing and stream) and must
//! not change, or stored shards stop being reproducible. The same generator serves the
//! trainer's draws (`maetok_trainer::train::rng`).

/// SplitMix64 finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a, 64-bit.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// SplitMix64 (Steele, Lea and Flood 2014), the project's one small generator: the views of
/// preprocessing, the loader's order and every training draw. It is counter-based: the n-th
/// output of `SplitMix::new(s)` is `mix(s + n·γ)`, so a draw keyed by (seed, step, stream,
/// sample) is reached directly, without drawing the ones before it.
#[derive(Debug, Clone)]
pub struct SplitMix {
    state: u64,
}

/// SplitMix64's increment γ (the odd integer nearest 2⁶⁴/φ).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

impl SplitMix {
    /// The generator whose state is `state`.
    pub fn new(state: u64) -> Self {
        SplitMix { state }
    }

    /// The generator for one view of one sample, keyed by (seed, key, view).
    pub fn for_view(seed: u64, key: &str, view: u16) -> Self {
        Self::new(mix(mix(seed) ^ fnv1a(key.as_bytes())) ^ mix(view as u64 + 1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix(self.state)
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal, by Box–Muller from two uniforms (one value per call; SiT's
    /// per-sample time draw needs one).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]: ln is finite
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Uniform integer in `[0, n)` (unbiased, by rejection).
    ///
    /// # Panics
    /// If `n == 0`.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "empty range");
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let v = self.next_u64();
            if v < zone {
                return v % n;
            }
        }
    }
}

/// `n` uniforms in [0, 1) from `SplitMix::new(seed)`, as f32: fixture draws every CPU
/// reproduces (`tests/fixtures/gen/portable_rng.py` is the Python side; libtorch's own
/// generator gives other numbers under other kernel sets).
pub fn fixture_uniforms(seed: u64, n: usize) -> Vec<f32> {
    let mut g = SplitMix::new(seed);
    (0..n).map(|_| g.uniform() as f32).collect()
}

/// `n` standard normals from `SplitMix::new(seed)` (two uniforms each), as f32.
pub fn fixture_normals(seed: u64, n: usize) -> Vec<f32> {
    let mut g = SplitMix::new(seed);
    (0..n).map(|_| g.normal() as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::SplitMix as Gen;

    #[test]
    fn normal_has_unit_moments() {
        let mut r = Gen::new(11);
        let v: Vec<f64> = (0..200_000).map(|_| r.normal()).collect();
        let m = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64;
        assert!(m.abs() < 0.01 && (var - 1.0).abs() < 0.01, "{m} {var}");
        assert!(v.iter().all(|x| x.is_finite()));
    }

    use super::*;

    #[test]
    fn stream_is_pinned() {
        // Pinned values: changing the construction would silently change stored views.
        let mut r = SplitMix::for_view(0, "n01440764/n01440764_10026", 2);
        let first = r.next_u64();
        let mut again = SplitMix::for_view(0, "n01440764/n01440764_10026", 2);
        assert_eq!(first, again.next_u64());
        assert_ne!(
            first,
            SplitMix::for_view(0, "n01440764/n01440764_10026", 3).next_u64()
        );
        assert_ne!(
            first,
            SplitMix::for_view(1, "n01440764/n01440764_10026", 2).next_u64()
        );
        assert_eq!(fnv1a(b"a"), 0xAF63_DC4C_8601_EC8C);
        // SplitMix64's published first output for state 0.
        assert_eq!(SplitMix::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn below_covers_range_uniformly() {
        let mut r = SplitMix::for_view(3, "k", 2);
        let mut counts = [0u32; 5];
        for _ in 0..50_000 {
            counts[r.below(5) as usize] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
    }
}
