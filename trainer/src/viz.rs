//! Pictures for people watching a run: originals above reconstructions, and loss curves.

use std::path::Path;

use anyhow::Context;
use tch::Tensor;

use crate::metrics::to_u8;

/// (B, 3, H, W) in [-1, 1] → B interleaved RGB8 buffers (the reference's uint8 rounding).
pub fn tensor_to_rgb8(x: &Tensor) -> Vec<Vec<u8>> {
    let x = x
        .detach()
        .to_device(tch::Device::Cpu)
        .to_kind(tch::Kind::Float)
        .clamp(-1.0, 1.0)
        .permute([0, 2, 3, 1])
        .contiguous();
    let b = x.size()[0] as usize;
    let n = x.numel();
    let mut flat = vec![0f32; n];
    x.view([-1]).copy_data(&mut flat, n);
    let per = n / b.max(1);
    flat.chunks(per.max(1))
        .map(|c| c.iter().map(|&v| to_u8(v)).collect())
        .collect()
}

/// Originals (top row) above their reconstructions (bottom row), up to `n` columns, each
/// `side` × `side`.
pub fn write_grid(
    originals: &[&[u8]],
    recons: &[&[u8]],
    side: usize,
    n: usize,
    path: &Path,
) -> anyhow::Result<()> {
    let n = n.min(recons.len()).min(originals.len()).max(1);
    let rows = vec![
        originals.iter().take(n).copied().collect(),
        recons.iter().take(n).copied().collect(),
    ];
    write_rows(&rows, side, path)
}

/// Rows of same-size images (e.g. originals, stage 1, stage 2), one column per image.
pub fn write_rows(rows: &[Vec<&[u8]>], side: usize, path: &Path) -> anyhow::Result<()> {
    let cols = rows.iter().map(|r| r.len()).max().unwrap_or(0).max(1) as u32;
    let (s, pad) = (side as u32, 4u32);
    let mut canvas = image::RgbImage::from_pixel(
        cols * (s + pad) + pad,
        rows.len() as u32 * (s + pad) + pad,
        image::Rgb([255, 255, 255]),
    );
    for (r, row) in rows.iter().enumerate() {
        for (c, px) in row.iter().enumerate() {
            let tile = image::RgbImage::from_raw(s, s, px.to_vec()).context("image buffer")?;
            let (x, y) = (pad + c as u32 * (s + pad), pad + r as u32 * (s + pad));
            image::imageops::overlay(&mut canvas, &tile, x as i64, y as i64);
        }
    }
    canvas
        .save(path)
        .with_context(|| format!("writing {}", path.display()))
}

/// Colours of the curves, in series order (the legend is the series order in the run's
/// `metrics.jsonl` keys, also logged).
pub const PALETTE: [[u8; 3]; 8] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
];

/// Loss curves on a shared log-scale y axis (each series' own range would hide the
/// trends of the small terms), steps on x, light grid lines at powers of ten.
pub fn write_loss_curves(series: &[(String, Vec<(u64, f64)>)], path: &Path) -> anyhow::Result<()> {
    let (w, h, m) = (800u32, 400u32, 20u32);
    let mut img = image::RgbImage::from_pixel(w, h, image::Rgb([255, 255, 255]));
    let pts: Vec<(u64, f64)> = series
        .iter()
        .flat_map(|(_, s)| s.iter().copied())
        .filter(|(_, v)| v.is_finite() && v.abs() > 0.0)
        .collect();
    if pts.is_empty() {
        return img
            .save(path)
            .with_context(|| format!("writing {}", path.display()));
    }
    let x_max = pts.iter().map(|p| p.0).max().unwrap_or(1).max(1) as f64;
    let lo = pts
        .iter()
        .map(|p| p.1.abs().log10())
        .fold(f64::MAX, f64::min)
        .floor();
    let hi = pts
        .iter()
        .map(|p| p.1.abs().log10())
        .fold(f64::MIN, f64::max)
        .ceil();
    let hi = if hi <= lo { lo + 1.0 } else { hi };
    let to_px = |step: u64, v: f64| -> (f64, f64) {
        let x = m as f64 + (w - 2 * m) as f64 * step as f64 / x_max;
        let y = (h - m) as f64 - (h - 2 * m) as f64 * (v.abs().log10() - lo) / (hi - lo);
        (x, y)
    };
    for d in (lo as i32)..=(hi as i32) {
        let (_, y) = to_px(0, 10f64.powi(d));
        for x in m..w - m {
            img.put_pixel(
                x,
                y.round().clamp(0.0, (h - 1) as f64) as u32,
                image::Rgb([225, 225, 225]),
            );
        }
    }
    for (i, (_, s)) in series.iter().enumerate() {
        let c = image::Rgb(PALETTE[i % PALETTE.len()]);
        let mut prev: Option<(f64, f64)> = None;
        for &(step, v) in s {
            if !v.is_finite() || v == 0.0 {
                prev = None;
                continue;
            }
            let p = to_px(step, v);
            let from = prev.unwrap_or(p);
            let n = ((p.0 - from.0).abs().max((p.1 - from.1).abs()).ceil() as usize).max(1);
            for k in 0..=n {
                let t = k as f64 / n as f64;
                let (x, y) = (from.0 + t * (p.0 - from.0), from.1 + t * (p.1 - from.1));
                if x >= 0.0 && y >= 0.0 && x < w as f64 && y < h as f64 {
                    img.put_pixel(x as u32, y as u32, c);
                }
            }
            prev = Some(p);
        }
    }
    img.save(path)
        .with_context(|| format!("writing {}", path.display()))
}
