//! Reconstruction metrics as the reference evaluation computes them (spec §8.1,
//! `inference/reconstruct_vq.py`): both images as uint8 (`clamp(127.5·x + 128, 0, 255)`,
//! truncated), then floats in [0, 1]; PSNR with data range 1; SSIM as scikit-image's
//! `structural_similarity(..., channel_axis=-1, data_range=2.0)`: 7×7 uniform windows,
//! sample covariances (N/(N−1)), K1 = 0.01, K2 = 0.03, mean over the windows that fit
//! inside the image and over channels. (`data_range = 2.0` on [0, 1] images is the
//! repository's quirk, kept so numbers compare; [`ssim_with_range`] with 1.0 is the standard
//! SSIM, `maetok eval tokenizer --ssim-standard`.)

/// `x` in [-1, 1] → uint8 the way the reference does (`+128`, truncation).
pub fn to_u8(x: f32) -> u8 {
    (127.5 * x + 128.0).clamp(0.0, 255.0) as u8
}

/// PSNR in dB of two same-size uint8 images (any layout), data range 1 on `v / 255`.
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mse = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = (x as f64 - y as f64) / 255.0;
            d * d
        })
        .sum::<f64>()
        / a.len() as f64;
    10.0 * (1.0 / mse).log10()
}

/// SSIM of two interleaved RGB uint8 images `w × h` as the reference computes it
/// (`data_range = 2.0`, see module docs).
pub fn ssim(a: &[u8], b: &[u8], w: usize, h: usize) -> f64 {
    ssim_with_range(a, b, w, h, 2.0)
}

/// SSIM with scikit-image's `data_range` = `range` (1.0: the standard SSIM of [0, 1]
/// images).
pub fn ssim_with_range(a: &[u8], b: &[u8], w: usize, h: usize, range: f64) -> f64 {
    assert_eq!(a.len(), w * h * 3);
    assert_eq!(b.len(), w * h * 3);
    const WIN: usize = 7;
    let (k1, k2) = (0.01f64, 0.03f64);
    let (c1, c2) = ((k1 * range).powi(2), (k2 * range).powi(2));
    let np = (WIN * WIN) as f64;
    let cov_norm = np / (np - 1.0);
    let mut total = 0.0;
    for ch in 0..3 {
        let px = |img: &[u8], x: usize, y: usize| img[(y * w + x) * 3 + ch] as f64 / 255.0;
        // Summed-area tables of x, y, x², y², xy.
        let mut sat = vec![[0f64; 5]; (w + 1) * (h + 1)];
        for y in 0..h {
            let mut row = [0f64; 5];
            for x in 0..w {
                let (p, q) = (px(a, x, y), px(b, x, y));
                for (r, v) in row.iter_mut().zip([p, q, p * p, q * q, p * q]) {
                    *r += v;
                }
                let above = sat[y * (w + 1) + x + 1];
                let cell = &mut sat[(y + 1) * (w + 1) + x + 1];
                for k in 0..5 {
                    cell[k] = above[k] + row[k];
                }
            }
        }
        let mut sum = 0.0;
        let mut count = 0usize;
        for y0 in 0..=h - WIN {
            for x0 in 0..=w - WIN {
                let (x1, y1) = (x0 + WIN, y0 + WIN);
                let mut m = [0f64; 5];
                for (k, v) in m.iter_mut().enumerate() {
                    *v = (sat[y1 * (w + 1) + x1][k]
                        - sat[y0 * (w + 1) + x1][k]
                        - sat[y1 * (w + 1) + x0][k]
                        + sat[y0 * (w + 1) + x0][k])
                        / np;
                }
                let (ux, uy) = (m[0], m[1]);
                let vx = cov_norm * (m[2] - ux * ux);
                let vy = cov_norm * (m[3] - uy * uy);
                let vxy = cov_norm * (m[4] - ux * uy);
                sum += ((2.0 * ux * uy + c1) * (2.0 * vxy + c2))
                    / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
                count += 1;
            }
        }
        total += sum / count as f64;
    }
    total / 3.0
}

/// Per-image mean colour (the baseline a tokenizer must beat): every pixel of each channel
/// replaced by that channel's mean (rounded).
pub fn mean_colour(img: &[u8]) -> Vec<u8> {
    let n = img.len() / 3;
    let mut s = [0u64; 3];
    for (i, &v) in img.iter().enumerate() {
        s[i % 3] += v as u64;
    }
    let m = s.map(|v| ((v as f64 / n as f64).round()) as u8);
    (0..img.len()).map(|i| m[i % 3]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_images_are_perfect_and_mapping_matches_reference() {
        let img: Vec<u8> = (0..16 * 12 * 3).map(|i| (i * 37 % 251) as u8).collect();
        assert_eq!(psnr(&img, &img), f64::INFINITY);
        assert!((ssim(&img, &img, 16, 12) - 1.0).abs() < 1e-12);
        // p/127.5 - 1 maps back to p under the reference's +128 truncation.
        for p in 0..=255u8 {
            assert_eq!(to_u8(p as f32 / 127.5 - 1.0), p);
        }
    }
}
