//! Pillow-exact resampling (`Image.resize` with BOX or BICUBIC) for RGB8 images.
//!
//! The ADM center crop (spec §6) is defined by Pillow's arithmetic, so we reproduce it
//! rather than approximate it: double-precision filter coefficients normalised per output
//! pixel, converted to 22-bit fixed point, a horizontal pass rounded to u8, then a vertical
//! pass rounded to u8 (Pillow `src/libImaging/Resample.c`, `ImagingResampleInner`).
//!
//! One addition Pillow lacks: [`resize_window`] computes only a rectangle of the resized
//! image. Every output pixel of a separable two-pass resize depends only on its own row and
//! column coefficients, so the window equals `resize(...)` followed by a crop, bit for bit,
//! without spending time on pixels the crop throws away.

use super::Rgb8;

/// Bits of fixed-point precision Pillow uses for 8-bit images (`32 - 8 - 2`).
const PRECISION_BITS: u32 = 22;

/// The two filters the ADM crop needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// Pillow `Image.BOX`, support 0.5.
    Box,
    /// Pillow `Image.BICUBIC`, Keys cubic with a = -0.5, support 2.
    Bicubic,
}

impl Filter {
    fn support(self) -> f64 {
        match self {
            Filter::Box => 0.5,
            Filter::Bicubic => 2.0,
        }
    }

    fn eval(self, x: f64) -> f64 {
        match self {
            Filter::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Filter::Bicubic => {
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

/// Per-output-pixel filter taps in fixed point: `first[i]` is the first input index,
/// `weights[i*ksize .. i*ksize+count[i]]` the weights.
struct Coeffs {
    ksize: usize,
    first: Vec<usize>,
    count: Vec<usize>,
    weights: Vec<i32>,
}

impl Coeffs {
    /// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for outputs `out_range` of a
    /// resize of `in_size` samples to `out_size`.
    fn new(
        in_size: usize,
        out_size: usize,
        out_range: std::ops::Range<usize>,
        filter: Filter,
    ) -> Self {
        // Pillow passes the box edges as C floats; for whole-image resizes they are exact.
        let scale = (in_size as f32 - 0.0f32) as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = filter.support() * filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let n = out_range.len();
        let mut first = Vec::with_capacity(n);
        let mut count = Vec::with_capacity(n);
        let mut weights = vec![0i32; n * ksize];
        let mut k = vec![0f64; ksize];
        for (j, xx) in out_range.enumerate() {
            let center = (xx as f64 + 0.5) * scale;
            let ss = 1.0 / filterscale;
            // C casts truncate toward zero; both values are >= -0.5 + small here only when
            // clamped below, exactly as in Pillow.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let taps = xmax.saturating_sub(xmin);
            let mut ww = 0.0;
            for (x, kx) in k.iter_mut().enumerate().take(taps) {
                let w = filter.eval(((x + xmin) as f64 - center + 0.5) * ss);
                *kx = w;
                ww += w;
            }
            let row = &mut weights[j * ksize..j * ksize + taps];
            for (dst, &w) in row.iter_mut().zip(&k[..taps]) {
                let w = if ww != 0.0 { w / ww } else { w };
                let scaled = w * (1u32 << PRECISION_BITS) as f64;
                *dst = if w < 0.0 {
                    (-0.5 + scaled) as i32
                } else {
                    (0.5 + scaled) as i32
                };
            }
            first.push(xmin);
            count.push(taps);
        }
        Coeffs {
            ksize,
            first,
            count,
            weights,
        }
    }

    fn taps(&self, j: usize) -> (usize, &[i32]) {
        let start = j * self.ksize;
        (self.first[j], &self.weights[start..start + self.count[j]])
    }
}

#[inline(always)]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// Resize `src` to `out_w × out_h` like Pillow's `Image.resize(size, filter)`.
pub fn resize(src: &Rgb8, out_w: usize, out_h: usize, filter: Filter) -> Rgb8 {
    resize_window(src, out_w, out_h, 0..out_w, 0..out_h, filter)
}

/// The window `cols × rows` of `resize(src, out_w, out_h, filter)`, computed without the
/// rest of the image (see the module docs for why this is exact).
///
/// # Panics
/// If the window lies outside `out_w × out_h` or an output size is zero.
pub fn resize_window(
    src: &Rgb8,
    out_w: usize,
    out_h: usize,
    cols: std::ops::Range<usize>,
    rows: std::ops::Range<usize>,
    filter: Filter,
) -> Rgb8 {
    assert!(out_w > 0 && out_h > 0, "resize to an empty image");
    assert!(
        cols.end <= out_w && rows.end <= out_h,
        "window outside the resized image"
    );
    let (in_w, in_h) = (src.width, src.height);
    let need_h = out_w != in_w;
    let need_v = out_h != in_h;
    let win_w = cols.len();
    let win_h = rows.len();

    let vert = Coeffs::new(in_h, out_h, rows.clone(), filter);
    // Input rows the vertical pass reads (all of them when no vertical pass is needed).
    let (y_first, y_last) = if need_v {
        let last = (0..win_h)
            .map(|j| vert.first[j] + vert.count[j])
            .max()
            .unwrap_or(0);
        (vert.first.first().copied().unwrap_or(0), last)
    } else {
        (rows.start, rows.end)
    };

    // Horizontal pass over the rows the vertical pass needs (Pillow's per-pixel loop; a
    // transposed, vectorised variant measured slower because of the two transposes).
    let n_rows = y_last - y_first;
    let tmp = if need_h {
        let horiz = Coeffs::new(in_w, out_w, cols.clone(), filter);
        let mut out = vec![0u8; win_w * n_rows * 3];
        for (oy, y) in (y_first..y_last).enumerate() {
            let src_row = &src.data[y * in_w * 3..(y + 1) * in_w * 3];
            let dst_row = &mut out[oy * win_w * 3..(oy + 1) * win_w * 3];
            for (j, px) in dst_row.chunks_exact_mut(3).enumerate() {
                let (x0, w) = horiz.taps(j);
                let (mut r, mut g, mut b) = (HALF, HALF, HALF);
                let taps = &src_row[x0 * 3..(x0 + w.len()) * 3];
                for (&k, p) in w.iter().zip(taps.chunks_exact(3)) {
                    r += p[0] as i32 * k;
                    g += p[1] as i32 * k;
                    b += p[2] as i32 * k;
                }
                px[0] = clip8(r);
                px[1] = clip8(g);
                px[2] = clip8(b);
            }
        }
        Rgb8 {
            width: win_w,
            height: n_rows,
            data: out,
        }
    } else {
        // No horizontal pass: take the window's columns of the needed rows as they are.
        let mut out = Vec::with_capacity(win_w * n_rows * 3);
        for y in y_first..y_last {
            out.extend_from_slice(
                &src.data[(y * in_w + cols.start) * 3..(y * in_w + cols.end) * 3],
            );
        }
        Rgb8 {
            width: win_w,
            height: n_rows,
            data: out,
        }
    };
    if !need_v {
        return tmp;
    }
    let data = convolve_rows(&tmp.data, win_w * 3, &vert, y_first);
    Rgb8 {
        width: win_w,
        height: win_h,
        data,
    }
}

/// One output row per coefficient row `j`: `clip8(½ + Σ_i w_i · row(first_j + i - offset))`,
/// rows of `row_len` bytes. Whole rows at a time: cache friendly, auto-vectorises.
fn convolve_rows(src: &[u8], row_len: usize, coeffs: &Coeffs, offset: usize) -> Vec<u8> {
    let n = coeffs.first.len();
    let mut out = vec![0u8; n * row_len];
    let mut acc = vec![0i32; row_len];
    for (j, dst_row) in out.chunks_exact_mut(row_len).enumerate() {
        let (y0, w) = coeffs.taps(j);
        acc.fill(HALF);
        for (i, &k) in w.iter().enumerate() {
            let y = y0 + i - offset;
            let src_row = &src[y * row_len..(y + 1) * row_len];
            for (a, &p) in acc.iter_mut().zip(src_row) {
                *a += p as i32 * k;
            }
        }
        for (d, &a) in dst_row.iter_mut().zip(&acc) {
            *d = clip8(a);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_halving_is_the_rounded_mean_of_two_by_two() {
        let data: Vec<u8> = (0..8 * 6 * 3)
            .map(|i| ((i * 37) ^ (i >> 3)) as u8)
            .collect();
        let img = Rgb8::new(8, 6, data);
        let half = resize(&img, 4, 3, Filter::Box);
        for y in 0..3 {
            for x in 0..4 {
                for c in 0..3 {
                    let p = |yy: usize, xx: usize| img.data[(yy * 8 + xx) * 3 + c] as u32;
                    // Pillow rounds after each pass: rows first, then columns.
                    let top = (p(2 * y, 2 * x) + p(2 * y, 2 * x + 1)).div_ceil(2);
                    let bottom = (p(2 * y + 1, 2 * x) + p(2 * y + 1, 2 * x + 1)).div_ceil(2);
                    assert_eq!(
                        half.data[(y * 4 + x) * 3 + c] as u32,
                        (top + bottom).div_ceil(2)
                    );
                }
            }
        }
    }

    #[test]
    fn window_equals_full_resize_then_crop() {
        let data: Vec<u8> = (0..173 * 41 * 3)
            .map(|i| ((i * 37) ^ (i >> 3)) as u8)
            .collect();
        let img = Rgb8::new(173, 41, data);
        let full = resize(&img, 120, 70, Filter::Bicubic);
        let win = resize_window(&img, 120, 70, 13..77, 5..61, Filter::Bicubic);
        assert_eq!(win, full.crop(13, 5, 64, 56));
    }
}
