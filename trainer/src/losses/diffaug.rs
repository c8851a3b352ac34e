//! DiffAugment (Zhao et al. 2020) as the reference's `utils/diff_aug.py` applies it (spec
//! §5.1, §5.2): for each comma-separated policy one coin for the whole batch (skipped when it
//! exceeds `prob`); `color` = per-sample brightness ±0.5, saturation ×[0, 2), contrast
//! ×[0.5, 1.5); `translation` = per-sample shift of up to ⅛ of each side, zero filled;
//! `cutout_R` = a per-sample square of R·side set to 0.
//!
//! The random numbers come from a `Draws` source in the reference's order, so a training run
//! draws them from its keyed generators (`SampleDraws`: coins per step, values per sample)
//! and the parity test replays the reference's own.

use tch::{Kind, Tensor};

use crate::train::rng::SplitMix;

/// Random numbers in the order `diff_aug.py` asks torch for them.
pub trait Draws {
    /// `torch.rand(1)`.
    fn coin(&mut self) -> f64;
    /// `torch.rand(n)`: n uniforms in [0, 1).
    fn uniform(&mut self, n: usize) -> Vec<f64>;
    /// `torch.randint(lo, hi, n)`: n integers in [lo, hi).
    fn int(&mut self, lo: i64, hi: i64, n: usize) -> Vec<i64>;
}

/// `torch.randint`'s integer in [lo, hi) from a uniform in [0, 1).
fn int_in(u: f64, lo: i64, hi: i64) -> i64 {
    lo + ((u * (hi - lo).max(1) as f64) as i64).min(hi - lo - 1)
}

impl Draws for SplitMix {
    fn coin(&mut self) -> f64 {
        self.uniform()
    }

    fn uniform(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| SplitMix::uniform(self)).collect()
    }

    fn int(&mut self, lo: i64, hi: i64, n: usize) -> Vec<i64> {
        (0..n)
            .map(|_| int_in(SplitMix::uniform(self), lo, hi))
            .collect()
    }
}

/// A training step's draws: the policies' coins from the step's generator, each sample's
/// values from that sample's own (`train::rng::sample_rngs`), so a sample is augmented the
/// same way whichever rank holds it.
pub struct SampleDraws {
    pub batch: SplitMix,
    pub rows: Vec<SplitMix>,
}

impl SampleDraws {
    fn rows(&mut self, n: usize) -> &mut [SplitMix] {
        assert_eq!(
            n,
            self.rows.len(),
            "draws asked for {n} samples of a batch of {}",
            self.rows.len()
        );
        &mut self.rows
    }
}

impl Draws for SampleDraws {
    fn coin(&mut self) -> f64 {
        self.batch.uniform()
    }

    fn uniform(&mut self, n: usize) -> Vec<f64> {
        self.rows(n).iter_mut().map(|r| r.uniform()).collect()
    }

    fn int(&mut self, lo: i64, hi: i64, n: usize) -> Vec<i64> {
        self.rows(n)
            .iter_mut()
            .map(|r| int_in(r.uniform(), lo, hi))
            .collect()
    }
}

fn per_sample(v: &[f64], x: &Tensor) -> Tensor {
    Tensor::from_slice(v)
        .to_kind(x.kind())
        .to_device(x.device())
        .reshape([-1, 1, 1, 1])
}

fn ints(v: &[i64], x: &Tensor) -> Tensor {
    Tensor::from_slice(v)
        .to_device(x.device())
        .reshape([-1, 1, 1])
}

/// `x` (B, C, H, W) augmented by `policy` (e.g. `color,translation,cutout_0.2`).
pub fn diff_augment(x: &Tensor, policy: &str, prob: f64, d: &mut impl Draws) -> Tensor {
    let mut x = x.shallow_clone();
    if policy.is_empty() {
        return x;
    }
    let s = x.size();
    let (b, h, w) = (s[0], s[2], s[3]);
    let dev = x.device();
    let ar = |n: i64| Tensor::arange(n, (Kind::Int64, dev));
    for p in policy.split(',') {
        if d.coin() > prob {
            continue;
        }
        match p {
            "color" => {
                x = &x + (per_sample(&d.uniform(b as usize), &x) - 0.5);
                let mean = x.mean_dim(&[1i64][..], true, x.kind());
                x = (&x - &mean) * (per_sample(&d.uniform(b as usize), &x) * 2.0) + mean;
                let mean = x.mean_dim(&[1i64, 2, 3][..], true, x.kind());
                x = (&x - &mean) * (per_sample(&d.uniform(b as usize), &x) + 0.5) + mean;
            }
            "translation" => {
                let (sx, sy) = (
                    (h as f64 * 0.125 + 0.5) as i64,
                    (w as f64 * 0.125 + 0.5) as i64,
                );
                let tx = ints(&d.int(-sx, sx + 1, b as usize), &x);
                let ty = ints(&d.int(-sy, sy + 1, b as usize), &x);
                let gb = ar(b).reshape([b, 1, 1]).expand([b, h, w], false);
                let gx = (ar(h).reshape([1, h, 1]) + tx + 1)
                    .clamp(0, h + 1)
                    .expand([b, h, w], false);
                let gy = (ar(w).reshape([1, 1, w]) + ty + 1)
                    .clamp(0, w + 1)
                    .expand([b, h, w], false);
                let pad = x.constant_pad_nd([1, 1, 1, 1]).permute([0, 2, 3, 1]);
                x = pad
                    .index(&[Some(gb), Some(gx), Some(gy)])
                    .permute([0, 3, 1, 2]);
            }
            _ if p.starts_with("cutout_") => {
                let ratio: f64 = p["cutout_".len()..].parse().unwrap_or(0.2);
                let (ch, cw) = (
                    (h as f64 * ratio + 0.5) as i64,
                    (w as f64 * ratio + 0.5) as i64,
                );
                let ox = ints(&d.int(0, h + (1 - ch % 2), b as usize), &x);
                let oy = ints(&d.int(0, w + (1 - cw % 2), b as usize), &x);
                let gb = ar(b).reshape([b, 1, 1]).expand([b, ch, cw], false);
                let gx = (ar(ch).reshape([1, ch, 1]) + ox - ch / 2)
                    .clamp(0, h - 1)
                    .expand([b, ch, cw], false);
                let gy = (ar(cw).reshape([1, 1, cw]) + oy - cw / 2)
                    .clamp(0, w - 1)
                    .expand([b, ch, cw], false);
                let mut mask = Tensor::ones([b, h, w], (x.kind(), dev));
                let zeros = Tensor::zeros([b, ch, cw], (x.kind(), dev));
                let _ = mask.index_put_(&[Some(gb), Some(gx), Some(gy)], &zeros, false);
                x = &x * mask.unsqueeze(1);
            }
            other => {
                tracing::warn!("DiffAugment: unknown policy `{other}` ignored");
            }
        }
    }
    x.contiguous()
}
