//! HOG targets of MAETok's first auxiliary decoder (spec §4.2): the MaskFeat / SlowFast
//! `HOGLayerC` recipe as the author's training code computes it (`utils/hog.py`, commit
//! `f4d60a0`), written directly over pixels instead of as tensor ops.
//!
//! On the training input in [-1, 1] (`(u8/255 - 0.5)/0.5`, float32): reflect-pad 1, per
//! channel 3×3 Sobel (`kx = [[1,0,-1],[2,0,-2],[1,0,-1]]`, `ky = kxᵀ`), magnitude
//! `sqrt(gx²+gy²)`, phase `atan2(gx, gy)` (gx first) scaled to `phase/π·9` and binned with
//! `floor(·) mod 9` (9 unsigned 20° bins), magnitudes weighted by a 16×16 Gaussian (σ = 8,
//! normalised to sum 1) tiled every 16 px, summed into 8×8-pixel cells, each cell's 9-bin
//! histogram L2-normalised (eps 1e-12), and regrouped per 16×16 patch: 3 channels × 9 bins ×
//! 2×2 cells = 108 values, index `((c·9 + b)·2 + dy)·2 + dx`, patches row-major.
//!
//! At 512 px the reference's regrouping hard-codes 16 token rows and would not produce a
//! 32×32 grid; we keep the 108-value feature per 16×16 patch on the larger grid, the most
//! plausible choice per spec §4.2 (documented in docs/data-format.md).

use std::f32::consts::PI;

/// Orientation bins.
pub const NBINS: usize = 9;
/// Cell size in pixels (`pool` in the reference).
pub const CELL: usize = 8;
/// Gaussian window and token patch size in pixels.
pub const PATCH: usize = 16;
/// Channels of the input image.
pub const CHANNELS: usize = 3;
/// Values per token: 3 channels × 9 bins × 2×2 cells.
pub const DIM: usize = CHANNELS * NBINS * (PATCH / CELL) * (PATCH / CELL);

/// Why HOG cannot run on an input.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum HogError {
    #[error("HOG needs a size that is a multiple of {PATCH} px, got {width}x{height}")]
    BadSize { width: usize, height: usize },
    #[error("HOG input has {got} bytes, expected {expected} for an RGB8 image")]
    BadBuffer { got: usize, expected: usize },
}

/// The reference's Gaussian window: `n = arange(16) - 7.5; w = exp(-0.5 (n/8)²)`, outer
/// product, normalised to sum 1, all in float32.
pub fn gaussian_window() -> [[f32; PATCH]; PATCH] {
    let mut w1 = [0f32; PATCH];
    for (i, w) in w1.iter_mut().enumerate() {
        let n = (i as f32 - 7.5) / 8.0;
        *w = (-0.5 * n * n).exp();
    }
    let mut out = [[0f32; PATCH]; PATCH];
    let mut sum = 0f64;
    for (y, row) in out.iter_mut().enumerate() {
        for (x, v) in row.iter_mut().enumerate() {
            *v = w1[y] * w1[x];
            sum += *v as f64;
        }
    }
    let sum = sum as f32;
    for row in out.iter_mut() {
        for v in row.iter_mut() {
            *v /= sum;
        }
    }
    out
}

/// `(v/255 - 0.5)/0.5` in float32 for every byte, as torchvision's ToTensor + Normalize.
fn unit_range_lut() -> [f32; 256] {
    let mut lut = [0f32; 256];
    for (v, out) in lut.iter_mut().enumerate() {
        *out = (v as f32 / 255.0 - 0.5) / 0.5;
    }
    lut
}

/// Orientation bin of a gradient, exactly as the reference computes it in float32:
/// `floor(atan2(gx, gy) / π · 9) mod 9`.
#[inline]
fn bin_of(gx: f32, gy: f32) -> usize {
    let phase = gx.atan2(gy) / PI * NBINS as f32;
    (phase.floor() as i32).rem_euclid(NBINS as i32) as usize
}

/// `(cos, sin)` of the bin edges `j·π/9`, j = 1..8.
fn bin_edges() -> [(f32, f32); NBINS - 1] {
    std::array::from_fn(|i| {
        let a = (i + 1) as f64 * std::f64::consts::PI / NBINS as f64;
        (a.cos() as f32, a.sin() as f32)
    })
}

/// Bins of a row of gradients without `atan2`: fold each vector (gy, gx) into the upper
/// half plane (opposite directions share a bin) and count the bin edges it lies past,
/// which is branch-free and vectorises. Where a vector lies within ~1e-5 rad of an edge
/// (including 0/π) the
/// two methods could round differently, so those (rare) pixels take [`bin_of`]'s exact
/// reference arithmetic. Zero gradients get bin 0; their magnitude adds nothing anyway.
fn bins_row(gx: &[f32], gy: &[f32], mag: &[f32], edges: &[(f32, f32); NBINS - 1], out: &mut [u8]) {
    const MARGIN: f32 = 1e-5;
    let mut any_near = false;
    // Pass 1, branch-free: the bin by edge counting; 0xFF marks "near an edge".
    for ((o, &x), &y) in out.iter_mut().zip(gx).zip(gy) {
        let flip = x < 0.0 || (x == 0.0 && y < 0.0);
        let (u, v) = if flip { (-y, -x) } else { (y, x) };
        let scale = MARGIN * (u.abs() + v.abs());
        let mut k = 0u8;
        // The 0/π edge too: f32 noise in a gradient that should be zero (gx ≈ 1e-8) puts the
        // angle a hair from π, where the reference's float32 phase rounds to 9 → bin 0.
        let mut near = v.abs() <= scale;
        for &(c, s) in edges {
            let m = c * v - s * u;
            k += (m >= 0.0) as u8;
            near |= m.abs() <= scale;
        }
        // gx == ±0 exactly (flat columns, common in photographs): phase 0 or ±π, bin 0.
        let near = near && v != 0.0;
        *o = if v == 0.0 {
            0
        } else if near {
            0xFF
        } else {
            k
        };
        any_near |= near;
    }
    // Pass 2, rare: the reference arithmetic where the two could disagree.
    if any_near {
        for (i, o) in out.iter_mut().enumerate() {
            if *o == 0xFF {
                *o = if mag[i] > 0.0 {
                    bin_of(gx[i], gy[i]) as u8
                } else {
                    0
                };
            }
        }
    }
}

/// HOG features of an interleaved RGB8 image: `(H/16)·(W/16)` tokens × [`DIM`] values,
/// token-major. The bytes are first mapped to [-1, 1] as the training transforms do.
///
/// # Shapes
/// `rgb`: `height × width × 3` bytes → `(height/16)·(width/16)·108` values.
pub fn hog_rgb8(rgb: &[u8], width: usize, height: usize) -> Result<Vec<f32>, HogError> {
    check_size(width, height)?;
    if rgb.len() != width * height * CHANNELS {
        return Err(HogError::BadBuffer {
            got: rgb.len(),
            expected: width * height * CHANNELS,
        });
    }
    let lut = unit_range_lut();
    Ok(hog_core(width, height, |c, y, dst| {
        let row = &rgb[y * width * CHANNELS..(y + 1) * width * CHANNELS];
        for (d, px) in dst.iter_mut().zip(row.chunks_exact(CHANNELS)) {
            *d = lut[px[c] as usize];
        }
    }))
}

fn check_size(width: usize, height: usize) -> Result<(), HogError> {
    if width == 0 || height == 0 || !width.is_multiple_of(PATCH) || !height.is_multiple_of(PATCH) {
        return Err(HogError::BadSize { width, height });
    }
    Ok(())
}

/// HOG features of a float image laid out channel-major (`3 × height × width`), values as
/// the model sees them (nominally [-1, 1]).
///
/// # Shapes
/// `chw`: `3 × height × width` → `(height/16)·(width/16)·108` values.
pub fn hog_chw(chw: &[f32], width: usize, height: usize) -> Result<Vec<f32>, HogError> {
    check_size(width, height)?;
    if chw.len() != width * height * CHANNELS {
        return Err(HogError::BadBuffer {
            got: chw.len(),
            expected: width * height * CHANNELS,
        });
    }
    Ok(hog_core(width, height, |c, y, dst| {
        dst.copy_from_slice(&chw[(c * height + y) * width..][..width]);
    }))
}

/// The HOG computation over an image whose rows `row(c, y, out)` writes as float values
/// (validated sizes).
fn hog_core(width: usize, height: usize, row: impl Fn(usize, usize, &mut [f32])) -> Vec<f32> {
    let gauss = gaussian_window();
    let edges = bin_edges();
    let (cw, ch) = (width / CELL, height / CELL);
    // Cell histograms: [channel][bin][cell_y][cell_x].
    let mut hist = vec![0f32; CHANNELS * NBINS * ch * cw];
    let pw = width + 2;
    let mut plane = vec![0f32; pw * (height + 2)];
    let (mut gx, mut gy, mut mag) = (vec![0f32; width], vec![0f32; width], vec![0f32; width]);
    let mut bins = vec![0u8; width];
    // The Gaussian row for each y, tiled across the width.
    let tiled: Vec<Vec<f32>> = (0..PATCH)
        .map(|r| (0..width).map(|x| gauss[r][x % PATCH]).collect())
        .collect();
    for c in 0..CHANNELS {
        // Reflect-padded plane of channel c.
        for y in 0..height + 2 {
            let dst = &mut plane[y * pw..(y + 1) * pw];
            row(c, reflect(y as isize - 1, height), &mut dst[1..=width]);
            dst[0] = dst[2];
            dst[width + 1] = dst[width - 1];
        }
        let hist_c = &mut hist[c * NBINS * ch * cw..(c + 1) * NBINS * ch * cw];
        for y in 0..height {
            let (r0, r1, r2) = (
                &plane[y * pw..(y + 1) * pw],
                &plane[(y + 1) * pw..(y + 2) * pw],
                &plane[(y + 2) * pw..(y + 3) * pw],
            );
            let grow = &tiled[y % PATCH];
            // Cross-correlation with kx and ky, summed in the kernels' row-major order.
            // Equal-length slices let the compiler drop bounds checks and vectorise.
            let (a0, a1, a2) = (&r0[..width], &r0[1..=width], &r0[2..width + 2]);
            let (b0, b2) = (&r1[..width], &r1[2..width + 2]);
            let (c0, c1, c2) = (&r2[..width], &r2[1..=width], &r2[2..width + 2]);
            for x in 0..width {
                let gxv = a0[x] - a2[x] + 2.0 * b0[x] - 2.0 * b2[x] + c0[x] - c2[x];
                let gyv = a0[x] + 2.0 * a1[x] + a2[x] - c0[x] - 2.0 * c1[x] - c2[x];
                gx[x] = gxv;
                gy[x] = gyv;
                mag[x] = (gxv * gxv + gyv * gyv).sqrt() * grow[x];
            }
            bins_row(&gx, &gy, &mag, &edges, &mut bins);
            let cell_row = (y / CELL) * cw;
            for (cell, (m8, b8)) in mag
                .chunks_exact(CELL)
                .zip(bins.chunks_exact(CELL))
                .enumerate()
            {
                for (&m, &b) in m8.iter().zip(b8) {
                    hist_c[b as usize * ch * cw + cell_row + cell] += m;
                }
            }
        }
    }
    // L2-normalise each (channel, cell) over its bins.
    for c in 0..CHANNELS {
        for cell in 0..ch * cw {
            let idx = |b: usize| (c * NBINS + b) * ch * cw + cell;
            let norm = (0..NBINS)
                .map(|b| hist[idx(b)] * hist[idx(b)])
                .sum::<f32>()
                .sqrt()
                .max(1e-12);
            for b in 0..NBINS {
                hist[idx(b)] /= norm;
            }
        }
    }
    // Regroup per 16×16 patch.
    let (tw, th) = (width / PATCH, height / PATCH);
    let per = PATCH / CELL;
    let mut out = Vec::with_capacity(tw * th * DIM);
    for ty in 0..th {
        for tx in 0..tw {
            for cb in 0..CHANNELS * NBINS {
                for dy in 0..per {
                    for dx in 0..per {
                        out.push(hist[cb * ch * cw + (ty * per + dy) * cw + tx * per + dx]);
                    }
                }
            }
        }
    }
    out
}

/// The spec §10b check input, `x[c,h,w] = sin(0.1h + 0.07w + c) · cos(0.03w − 0.05·h·c)`,
/// channel-major `3 × size × size` (used by the unit test here and the parity test
/// against the official code).
pub fn spec_check_image(size: usize) -> Vec<f32> {
    let mut chw = vec![0f32; 3 * size * size];
    for c in 0..3 {
        for y in 0..size {
            for x in 0..size {
                let (cf, yf, xf) = (c as f32, y as f32, x as f32);
                chw[(c * size + y) * size + x] =
                    (0.1 * yf + 0.07 * xf + cf).sin() * (0.03 * xf - 0.05 * yf * cf).cos();
            }
        }
    }
    chw
}

/// PyTorch `reflect` padding index (no edge repeat).
fn reflect(i: isize, n: usize) -> usize {
    if i < 0 {
        (-i) as usize
    } else if i as usize >= n {
        2 * n - 2 - i as usize
    } else {
        i as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_window_matches_spec() {
        let g = gaussian_window();
        assert!((g[0][0] - 0.0022135).abs() < 5e-8, "{}", g[0][0]);
        assert!((g[7][7] - 0.0053100).abs() < 5e-8, "{}", g[7][7]);
        let sum: f64 = g.iter().flatten().map(|&v| v as f64).sum();
        assert!((sum - 1.0).abs() < 1e-6);
    }

    #[test]
    fn bins_follow_reference_conventions() {
        assert_eq!(bin_of(0.0, 1.0), 0); // phase 0
        assert_eq!(bin_of(0.0, -1.0), 0); // phase π -> 9 mod 9
        assert_eq!(bin_of(-0.0, -1.0), 0); // phase -π -> -9 mod 9
        assert_eq!(bin_of(1.0, 0.0), 4); // π/2 -> 4.5
        assert_eq!(bin_of(-1.0, 0.0), 4); // -π/2 -> -4.5 -> -5 mod 9
        assert_eq!(bin_of(1.0, 1.0), 2); // π/4 -> 2.25
        assert_eq!(bin_of(-1.0, -1.0), 2); // opposite directions share a bin
    }

    /// Spec §10b: the sin/cos test image and its reference values.
    #[test]
    fn spec_numeric_check() {
        let (h, w) = (256usize, 256usize);
        let chw = spec_check_image(256);
        assert!((chw[h * w] - 0.841471).abs() < 1e-6); // channel 1, pixel (0, 0)
        assert!((chw[10 * w + 20] - 0.557484).abs() < 1e-6);
        let out = hog_chw(&chw, w, h).unwrap();
        assert_eq!(out.len(), 256 * DIM);
        let close = |got: &[f32], want: &[f32]| {
            for (g, e) in got.iter().zip(want) {
                assert!((g - e).abs() < 2e-6, "got {got:?}, want {want:?}");
            }
        };
        close(
            &out[0..8],
            &[
                0.104074, 0.102445, 0.237379, 0.029937, 0.991763, 0.986095, 0.932977, 0.314019,
            ],
        );
        close(
            &out[137 * DIM..137 * DIM + 8],
            &[0.0, 0.0, 0.0, 0.006618, 0.0, 0.0, 0.0, 0.020789],
        );
        close(
            &out[255 * DIM + 100..255 * DIM + 108],
            &[
                0.065980, 0.013247, 0.0, 0.052012, 0.714364, 0.0, 0.0, 0.715390,
            ],
        );
        let sum: f64 = out.iter().map(|&v| v as f64).sum();
        let sumsq: f64 = out.iter().map(|&v| (v as f64).powi(2)).sum();
        assert!((sum - 4667.79).abs() < 0.01, "sum {sum}");
        assert!((sumsq - 3072.0).abs() < 1e-2, "sum of squares {sumsq}");
    }

    #[test]
    fn fast_bins_agree_with_the_reference_formula() {
        let edges = bin_edges();
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 8.0 - 4.0
        };
        let n = 200_000;
        let gx: Vec<f32> = (0..n)
            .map(|i| if i % 97 == 0 { 0.0 } else { next() })
            .collect();
        let gy: Vec<f32> = (0..n)
            .map(|i| if i % 89 == 0 { -0.0 } else { next() })
            .collect();
        let mag: Vec<f32> = gx
            .iter()
            .zip(&gy)
            .map(|(a, b)| (a * a + b * b).sqrt())
            .collect();
        let mut bins = vec![0u8; n];
        bins_row(&gx, &gy, &mag, &edges, &mut bins);
        for i in 0..n {
            if mag[i] > 0.0 {
                assert_eq!(
                    bins[i] as usize,
                    bin_of(gx[i], gy[i]),
                    "gx {} gy {}",
                    gx[i],
                    gy[i]
                );
            }
        }
    }

    /// 512 px: the same 108-value feature per 16×16 patch on a 32×32 grid (spec §4.2), and
    /// each patch's features are those of the 256-px computation's layout (unit-norm cells).
    #[test]
    fn grid_512_has_one_token_per_16px_patch() {
        let out = hog_chw(&spec_check_image(512), 512, 512).unwrap();
        assert_eq!(out.len(), 32 * 32 * DIM);
        for token in out.chunks_exact(DIM) {
            for c in 0..CHANNELS {
                for cell in 0..4 {
                    let norm: f32 = (0..NBINS)
                        .map(|b| token[(c * NBINS + b) * 4 + cell].powi(2))
                        .sum::<f32>()
                        .sqrt();
                    assert!((norm - 1.0).abs() < 1e-5 || norm == 0.0, "cell norm {norm}");
                }
            }
        }
        // The top-left 16×16 patch only sees pixels within 9 px of it: same as at 256 px
        // where the two images agree (the test image is defined per pixel, size-free).
        let small = hog_chw(&spec_check_image(256), 256, 256).unwrap();
        assert_eq!(&out[..DIM], &small[..DIM]);
    }

    #[test]
    fn rejects_bad_sizes() {
        assert!(matches!(
            hog_chw(&[0.0; 30 * 32 * 3], 30, 32),
            Err(HogError::BadSize { .. })
        ));
        assert!(matches!(
            hog_rgb8(&[0; 10], 32, 32),
            Err(HogError::BadBuffer { .. })
        ));
    }

    #[test]
    fn flat_image_gives_zero_features() {
        let out = hog_rgb8(&vec![128; 32 * 32 * 3], 32, 32).unwrap();
        assert_eq!(out.len(), 4 * DIM);
        assert!(out.iter().all(|&v| v == 0.0));
    }
}
