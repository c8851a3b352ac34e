//! Pictures for people watching a run: labelled rows of images (originals above
//! reconstructions) and loss curves with axes, values and a legend. Drawn with `plotters`
//! on its bitmap backend; the text uses a font compiled into the binary
//! (`epaint_default_fonts`' Ubuntu Light), so no system fonts are needed.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::Context;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontStyle};
use tch::Tensor;

use maetok_eval::reconstruction::to_u8;

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

/// The family name the bundled font is registered under.
const FONT: &str = "sans-serif";

/// Registers the bundled font with plotters once per process.
fn font() -> anyhow::Result<()> {
    // The outcome is kept, so every later call reports a failed registration too.
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        register_font(FONT, FontStyle::Normal, epaint_default_fonts::UBUNTU_LIGHT).is_ok()
    });
    anyhow::ensure!(ok, "the bundled font did not parse");
    Ok(())
}

/// Encodes an RGB8 canvas as PNG and writes it atomically (a reader never sees half a
/// picture: `loss.png` is rewritten at every log step).
fn save_png(buf: Vec<u8>, (w, h): (u32, u32), path: &Path) -> anyhow::Result<()> {
    let img = image::RgbImage::from_raw(w, h, buf).context("canvas size")?;
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png)
        .context("encoding PNG")?;
    maetok_nn::atomic::write(path, png.get_ref())
        .with_context(|| format!("writing {}", path.display()))
}

fn draw_err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> anyhow::Error {
    anyhow::anyhow!("drawing: {e}")
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
        ("original", originals.iter().take(n).copied().collect()),
        ("reconstruction", recons.iter().take(n).copied().collect()),
    ];
    write_rows(&rows, side, path)
}

/// Width of the label column left of the images.
pub const LABEL_W: u32 = 120;

/// Labelled rows of same-size RGB8 images (e.g. originals, stage 1, stage 2), one column
/// per image, the row's name left of it.
pub fn write_rows(rows: &[(&str, Vec<&[u8]>)], side: usize, path: &Path) -> anyhow::Result<()> {
    font()?;
    let cols = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(1) as u32;
    let (s, pad) = (side as u32, 4u32);
    let (w, h) = (
        LABEL_W + cols * (s + pad) + pad,
        rows.len() as u32 * (s + pad) + pad,
    );
    let mut buf = vec![255u8; (w * h * 3) as usize];
    for (r, (_, row)) in rows.iter().enumerate() {
        for (c, px) in row.iter().enumerate() {
            anyhow::ensure!(
                px.len() == (s * s * 3) as usize,
                "image {c} of row {r} has {} bytes, not {side}×{side}×3",
                px.len()
            );
            let (x0, y0) = (
                LABEL_W + pad + c as u32 * (s + pad),
                pad + r as u32 * (s + pad),
            );
            for y in 0..s {
                let src = &px[(y * s * 3) as usize..((y + 1) * s * 3) as usize];
                let at = (((y0 + y) * w + x0) * 3) as usize;
                buf[at..at + src.len()].copy_from_slice(src);
            }
        }
    }
    {
        let area = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        let style = TextStyle::from((FONT, 16).into_font())
            .color(&BLACK)
            .pos(Pos::new(HPos::Right, VPos::Center));
        for (r, (label, _)) in rows.iter().enumerate() {
            let y = (pad + r as u32 * (s + pad) + s / 2) as i32;
            area.draw_text(label, &style, (LABEL_W as i32 - 6, y))
                .map_err(draw_err)?;
        }
        area.present().map_err(draw_err)?;
    }
    save_png(buf, (w, h), path)
}

/// Loss curves on a shared log-scale y axis (each series' own range would hide the trends
/// of the small terms), steps on x, a legend naming each term, `title` above.
pub fn write_loss_curves(
    title: &str,
    series: &[(String, Vec<(u64, f64)>)],
    path: &Path,
) -> anyhow::Result<()> {
    font()?;
    let (w, h) = (900u32, 480u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    let finite = |v: f64| v.is_finite() && v > 0.0;
    let pts: Vec<(u64, f64)> = series
        .iter()
        .flat_map(|(_, s)| s.iter().copied())
        .filter(|&(_, v)| finite(v))
        .collect();
    {
        let area = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        area.fill(&WHITE).map_err(draw_err)?;
        let x_max = pts.iter().map(|p| p.0).max().unwrap_or(1).max(1);
        let lo = pts.iter().map(|p| p.1).fold(f64::MAX, f64::min);
        let hi = pts.iter().map(|p| p.1).fold(f64::MIN, f64::max);
        // The data's range with a margin; plotters labels the decades and, inside a
        // decade, the steps between them, so values can be read off.
        let (lo, hi) = if pts.is_empty() {
            (0.1, 10.0)
        } else {
            (lo / 1.25, hi * 1.25)
        };
        let mut chart = ChartBuilder::on(&area)
            .caption(title, (FONT, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(
                0u64..x_max,
                (lo..hi).log_scale().with_key_points(log_ticks(lo, hi)),
            )
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("loss (log scale)")
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 15))
            .y_label_formatter(&|v| sig3(*v))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(draw_err)?;
        for (i, (name, s)) in series.iter().enumerate() {
            let [r, g, b] = PALETTE[i % PALETTE.len()];
            let colour = RGBColor(r, g, b);
            let line: Vec<(u64, f64)> = s.iter().copied().filter(|&(_, v)| finite(v)).collect();
            chart
                .draw_series(LineSeries::new(line, colour.stroke_width(2)))
                .map_err(draw_err)?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                });
        }
        if !series.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .label_font((FONT, 14))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.4))
                .draw()
                .map_err(draw_err)?;
        }
        area.present().map_err(draw_err)?;
    }
    save_png(buf, (w, h), path)
}

/// Ticks of a log axis over [lo, hi]: 1, 2, 5 × 10ᵏ, or every integer multiple of 10ᵏ when
/// that gives fewer than four (a range within one decade).
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let within = |mults: &[f64]| -> Vec<f64> {
        let (d0, d1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
        (d0..=d1)
            .flat_map(|d| mults.iter().map(move |m| m * 10f64.powi(d)))
            .filter(|v| (lo..=hi).contains(v))
            .collect()
    };
    let coarse = within(&[1.0, 2.0, 5.0]);
    if coarse.len() >= 4 {
        coarse
    } else {
        within(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0])
    }
}

/// A tick value with three significant digits, in the shorter of fixed and exponent form.
fn sig3(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let e = v.abs().log10().floor() as i32;
    if (-3..4).contains(&e) {
        let decimals = (2 - e).max(0) as usize;
        let s = format!("{v:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    } else {
        format!("{v:.2e}")
    }
}

/// Colours of the curves, in series order (matplotlib's tab10).
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

/// A bar chart: one bar per (label, value), values written above the bars, `y_desc` on the
/// axis, `title` above (the Inception Score of each split, a report's per-group numbers).
pub fn write_bars(
    title: &str,
    y_desc: &str,
    bars: &[(String, f64)],
    path: &Path,
) -> anyhow::Result<()> {
    font()?;
    let (w, h) = (720u32, 420u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let area = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        area.fill(&WHITE).map_err(draw_err)?;
        let hi = bars
            .iter()
            .map(|b| b.1)
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max)
            .max(1e-9)
            * 1.2;
        let n = bars.len().max(1) as u32;
        let mut chart = ChartBuilder::on(&area)
            .caption(title, (FONT, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            // A segmented 0..m has m + 1 slots.
            .build_cartesian_2d((0u32..(n - 1).max(1)).into_segmented(), 0f64..hi)
            .map_err(draw_err)?;
        let labels: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_desc(y_desc)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 15))
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .y_label_formatter(&|v| sig3(*v))
            .draw()
            .map_err(draw_err)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, b)| {
                let i = i as u32;
                let mut r = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 0.0),
                        (SegmentValue::Exact(i + 1), b.1),
                    ],
                    RGBColor(70, 110, 180).filled(),
                );
                r.set_margin(0, 0, 8, 8);
                r
            }))
            .map_err(draw_err)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, b)| {
                Text::new(
                    sig3(b.1),
                    (SegmentValue::CenterOf(i as u32), b.1 + hi * 0.02),
                    TextStyle::from((FONT, 13).into_font())
                        .pos(Pos::new(HPos::Center, VPos::Bottom)),
                )
            }))
            .map_err(draw_err)?;
        area.present().map_err(draw_err)?;
    }
    save_png(buf, (w, h), path)
}

/// Lines on linear axes, one per named series of (x, y) points, with a legend: a
/// report's curves (held-out NLL against the number of mixture components, a PCA spectrum).
pub fn write_lines(
    title: &str,
    (x_desc, y_desc): (&str, &str),
    series: &[(String, Vec<(f64, f64)>)],
    path: &Path,
) -> anyhow::Result<()> {
    font()?;
    let (w, h) = (900u32, 480u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let pts: Vec<(f64, f64)> = series
            .iter()
            .flat_map(|(_, s)| s.iter().copied())
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .collect();
        let span = |f: fn(&(f64, f64)) -> f64| {
            let lo = pts.iter().map(f).fold(f64::MAX, f64::min);
            let hi = pts.iter().map(f).fold(f64::MIN, f64::max);
            if pts.is_empty() {
                (0.0, 1.0)
            } else if hi > lo {
                let m = (hi - lo) * 0.05;
                (lo - m, hi + m)
            } else {
                (lo - 0.5, hi + 0.5)
            }
        };
        let ((x0, x1), (y0, y1)) = (span(|p| p.0), span(|p| p.1));
        let area = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        area.fill(&WHITE).map_err(draw_err)?;
        let mut chart = ChartBuilder::on(&area)
            .caption(title, (FONT, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 15))
            .x_label_formatter(&|v| sig3(*v))
            .y_label_formatter(&|v| sig3(*v))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(draw_err)?;
        for (i, (name, s)) in series.iter().enumerate() {
            let colour = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(s.iter().copied(), colour.stroke_width(2)))
                .map_err(draw_err)?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2))
                });
            chart
                .draw_series(s.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                .map_err(draw_err)?;
        }
        chart
            .configure_series_labels()
            .label_font((FONT, 13))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(draw_err)?;
        area.present().map_err(draw_err)?;
    }
    save_png(buf, (w, h), path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_read_as_three_significant_digits() {
        assert_eq!(sig3(0.0235), "0.0235");
        assert_eq!(sig3(0.1), "0.1");
        assert_eq!(sig3(2.5), "2.5");
        assert_eq!(sig3(1234.0), "1234");
        assert_eq!(sig3(0.000_123_4), "1.23e-4");
        assert_eq!(log_ticks(0.02, 0.6), [0.02, 0.05, 0.1, 0.2, 0.5]);
        assert_eq!(log_ticks(0.055, 0.099).len(), 4); // 0.06 … 0.09
    }

    /// The pictures carry text: label and legend pixels differ from a text-free canvas.
    #[test]
    fn curves_and_rows_are_drawn_with_text() {
        let dir = tempfile::tempdir().unwrap();
        let series = vec![
            (
                "loss".to_string(),
                (1..=50).map(|s| (s, 1.0 / s as f64)).collect(),
            ),
            (
                "rec".to_string(),
                (1..=50).map(|s| (s, 0.1 / s as f64)).collect(),
            ),
        ];
        let p = dir.path().join("loss.png");
        write_loss_curves("run `x`", &series, &p).unwrap();
        let img = image::open(&p).unwrap().into_rgb8();
        assert_eq!(img.dimensions(), (900, 480));
        // Curves in their palette colours, and dark text (axes, labels, title).
        let has = |c: [u8; 3]| img.pixels().any(|p| p.0 == c);
        assert!(has(PALETTE[0]) && has(PALETTE[1]));
        let dark = img.pixels().filter(|p| p.0.iter().all(|&v| v < 90)).count();
        assert!(dark > 500, "{dark} dark pixels: no axes or text?");

        let tile = vec![200u8; 8 * 8 * 3];
        let rows = vec![
            ("original", vec![tile.as_slice(); 3]),
            ("stage 1", vec![tile.as_slice(); 3]),
        ];
        let p = dir.path().join("rows.png");
        write_rows(&rows, 8, &p).unwrap();
        let img = image::open(&p).unwrap().into_rgb8();
        assert_eq!(img.dimensions(), (LABEL_W + 3 * 12 + 4, 2 * 12 + 4));
        let label_ink = (0..LABEL_W)
            .flat_map(|x| (0..img.height()).map(move |y| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0[0] < 128)
            .count();
        assert!(
            label_ink > 20,
            "row labels not drawn ({label_ink} dark pixels)"
        );
        assert_eq!(img.get_pixel(LABEL_W + 4, 4).0, [200, 200, 200]);
    }
}
