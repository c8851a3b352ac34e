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

/// Orientation bin of a gradient, exactly as the reference computes it in float32.
#[inline]
fn bin_of(gx: f32, gy: f32) -> usize {
    let phase = gx.atan2(gy) / PI * NBINS as f32;
    (phase.floor() as i32).rem_euclid(NBINS as i32) as usize
}

/// HOG features of an interleaved RGB8 image: `(H/16)·(W/16)` tokens × [`DIM`] values,
/// token-major. The bytes are first mapped to [-1, 1] as the training transforms do.
///
/// # Shapes
/// `rgb`: `height × width × 3` bytes → `(height/16)·(width/16)·108` values.
pub fn hog_rgb8(rgb: &[u8], width: usize, height: usize) -> Result<Vec<f32>, HogError> {
    if rgb.len() != width * height * CHANNELS {
        return Err(HogError::BadBuffer {
            got: rgb.len(),
            expected: width * height * CHANNELS,
        });
    }
    let lut = unit_range_lut();
    let mut chw = vec![0f32; rgb.len()];
    let plane = width * height;
    for (i, px) in rgb.chunks_exact(CHANNELS).enumerate() {
        for c in 0..CHANNELS {
            chw[c * plane + i] = lut[px[c] as usize];
        }
    }
    hog_chw(&chw, width, height)
}

/// HOG features of a float image laid out channel-major (`3 × height × width`), values as
/// the model sees them (nominally [-1, 1]).
///
/// # Shapes
/// `chw`: `3 × height × width` → `(height/16)·(width/16)·108` values.
pub fn hog_chw(chw: &[f32], width: usize, height: usize) -> Result<Vec<f32>, HogError> {
    if width == 0 || height == 0 || !width.is_multiple_of(PATCH) || !height.is_multiple_of(PATCH) {
        return Err(HogError::BadSize { width, height });
    }
    if chw.len() != width * height * CHANNELS {
        return Err(HogError::BadBuffer {
            got: chw.len(),
            expected: width * height * CHANNELS,
        });
    }
    let gauss = gaussian_window();
    let (cw, ch) = (width / CELL, height / CELL);
    // Cell histograms: [channel][bin][cell_y][cell_x].
    let mut hist = vec![0f32; CHANNELS * NBINS * ch * cw];
    let pw = width + 2;
    let mut plane = vec![0f32; pw * (height + 2)];
    for c in 0..CHANNELS {
        let src = &chw[c * width * height..(c + 1) * width * height];
        // Reflect-padded plane of channel c.
        for y in 0..height + 2 {
            let sy = reflect(y as isize - 1, height);
            for x in 0..width + 2 {
                plane[y * pw + x] = src[sy * width + reflect(x as isize - 1, width)];
            }
        }
        let hist_c = &mut hist[c * NBINS * ch * cw..(c + 1) * NBINS * ch * cw];
        for y in 0..height {
            let (r0, r1, r2) = (
                &plane[y * pw..],
                &plane[(y + 1) * pw..],
                &plane[(y + 2) * pw..],
            );
            let grow = &gauss[y % PATCH];
            let cell_row = (y / CELL) * cw;
            for x in 0..width {
                // Cross-correlation with kx and ky, summed in the kernels' row-major order.
                let gx = r0[x] - r0[x + 2] + 2.0 * r1[x] - 2.0 * r1[x + 2] + r2[x] - r2[x + 2];
                let gy = r0[x] + 2.0 * r0[x + 1] + r0[x + 2] - r2[x] - 2.0 * r2[x + 1] - r2[x + 2];
                let mag = (gx * gx + gy * gy).sqrt() * grow[x % PATCH];
                hist_c[bin_of(gx, gy) * ch * cw + cell_row + x / CELL] += mag;
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
    Ok(out)
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
        let mut chw = vec![0f32; 3 * h * w];
        for c in 0..3 {
            for y in 0..h {
                for x in 0..w {
                    let (cf, yf, xf) = (c as f32, y as f32, x as f32);
                    chw[(c * h + y) * w + x] =
                        (0.1 * yf + 0.07 * xf + cf).sin() * (0.03 * xf - 0.05 * yf * cf).cos();
                }
            }
        }
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
