//! The views of one image stored as shard rows (ARCHITECTURE §4).
//!
//! View 0 is the ADM center crop of guided-diffusion / MAETok (spec §6): BOX-halve while the
//! short side is at least twice the target, BICUBIC-resize the short side to the target with
//! Python's half-to-even `round`, crop the center. View 1 is view 0 mirrored. Views ≥ 2 are
//! ADM's `random_crop_arr` (short side drawn from `[ceil(R/1.0), ceil(R/0.8)]`, random crop)
//! followed by a random horizontal flip, all drawn from a generator seeded by
//! (seed, key, view) so a rerun, or another node, produces the same pixels.

use super::resample::{resize_window, Filter};
use super::Rgb8;
use maetok_nn::rng::SplitMix;

/// Where a view came from, in source-image pixels (after EXIF handling, before resizing).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CropBox {
    pub left: f32,
    pub top: f32,
    pub width: f32,
    pub height: f32,
    pub flip: bool,
}

/// One view: `resolution × resolution` pixels and their provenance.
#[derive(Debug, Clone)]
pub struct View {
    pub index: u16,
    pub pixels: Rgb8,
    pub crop: CropBox,
}

/// Python's `round` (half to even) for the positive values the crop uses.
fn round_half_even(x: f64) -> usize {
    let r = x.round();
    let out = if (x - x.trunc()).abs() == 0.5 && (r as i64) % 2 != 0 {
        r - 1.0
    } else {
        r
    };
    out as usize
}

/// BOX-halves (Pillow `resize((w//2, h//2), BOX)`) while the short side is `>= 2 * short`.
fn box_halve(img: &Rgb8, short: usize) -> Option<Rgb8> {
    let mut cur: Option<Rgb8> = None;
    loop {
        let c = cur.as_ref().unwrap_or(img);
        if c.width.min(c.height) < 2 * short {
            return cur;
        }
        let (w, h) = (c.width / 2, c.height / 2);
        cur = Some(resize_window(c, w, h, 0..w, 0..h, Filter::Box));
    }
}

/// Resize so the short side is `short` (after BOX halving) and cut the `r × r` window at
/// (`left`, `top`) chosen by `place` from the resized size. Returns the pixels and the crop
/// box mapped back to source pixels.
fn resize_and_crop(
    img: &Rgb8,
    short: usize,
    r: usize,
    place: impl FnOnce(usize, usize) -> (usize, usize),
) -> (Rgb8, CropBox) {
    let halved = box_halve(img, short);
    let base = halved.as_ref().unwrap_or(img);
    let scale = short as f64 / base.width.min(base.height) as f64;
    let w = round_half_even(base.width as f64 * scale);
    let h = round_half_even(base.height as f64 * scale);
    let (left, top) = place(w, h);
    let pixels = resize_window(base, w, h, left..left + r, top..top + r, Filter::Bicubic);
    let (sx, sy) = (img.width as f64 / w as f64, img.height as f64 / h as f64);
    let crop = CropBox {
        left: (left as f64 * sx) as f32,
        top: (top as f64 * sy) as f32,
        width: (r as f64 * sx) as f32,
        height: (r as f64 * sy) as f32,
        flip: false,
    };
    (pixels, crop)
}

/// The ADM center crop at `r` pixels (view 0).
pub fn adm_center_crop(img: &Rgb8, r: usize) -> (Rgb8, CropBox) {
    resize_and_crop(img, r, r, |w, h| ((w - r) / 2, (h - r) / 2))
}

/// ADM `random_crop_arr` (min/max crop fraction 0.8/1.0) plus a coin-flip mirror.
pub fn random_resized_crop(img: &Rgb8, r: usize, rng: &mut SplitMix) -> (Rgb8, CropBox) {
    let min_short = r; // ceil(r / 1.0)
    let max_short = (r as f64 / 0.8).ceil() as usize;
    let short = min_short + rng.below((max_short - min_short + 1) as u64) as usize;
    let (pixels, mut crop) = resize_and_crop(img, short, r, |w, h| {
        let top = rng.below((h - r + 1) as u64) as usize;
        let left = rng.below((w - r + 1) as u64) as usize;
        (left, top)
    });
    if rng.below(2) == 1 {
        crop.flip = true;
        return (pixels.flipped_horizontally(), crop);
    }
    (pixels, crop)
}

/// All `count` views of `img` at resolution `r` for sample `key` under `seed`.
pub fn make_views(img: &Rgb8, r: usize, count: u16, seed: u64, key: &str) -> Vec<View> {
    let mut views = Vec::with_capacity(count as usize);
    if count == 0 {
        return views;
    }
    let (center, crop) = adm_center_crop(img, r);
    if count >= 2 {
        views.push(View {
            index: 1,
            pixels: center.flipped_horizontally(),
            crop: CropBox { flip: true, ..crop },
        });
    }
    views.insert(
        0,
        View {
            index: 0,
            pixels: center,
            crop,
        },
    );
    for index in 2..count {
        let mut rng = SplitMix::for_view(seed, key, index);
        let (pixels, crop) = random_resized_crop(img, r, &mut rng);
        views.push(View {
            index,
            pixels,
            crop,
        });
    }
    views
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: usize, h: usize) -> Rgb8 {
        let mut d = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                d.extend_from_slice(&[
                    (x * 255 / w) as u8,
                    (y * 255 / h) as u8,
                    ((x + y) % 256) as u8,
                ]);
            }
        }
        Rgb8::new(w, h, d)
    }

    #[test]
    fn python_round_is_half_to_even() {
        assert_eq!(round_half_even(2.5), 2);
        assert_eq!(round_half_even(3.5), 4);
        assert_eq!(round_half_even(256.49), 256);
        assert_eq!(round_half_even(340.5), 340);
    }

    #[test]
    fn center_crop_box_maps_back_to_source() {
        // 1000x600: one BOX halving (600 >= 512) to 500x300, then 300 -> 256, width 427.
        let (px, crop) = adm_center_crop(&gradient(1000, 600), 256);
        assert_eq!((px.width, px.height), (256, 256));
        let w2 = round_half_even(500.0 * 256.0 / 300.0);
        assert_eq!(w2, 427);
        let sx = 1000.0 / 427.0;
        assert!((crop.left as f64 - ((427 - 256) / 2) as f64 * sx).abs() < 1e-3);
        assert!((crop.height - 600.0).abs() < 1e-3);
        assert!(!crop.flip);
    }

    #[test]
    fn views_are_deterministic_and_distinct() {
        let img = gradient(500, 375);
        let a = make_views(&img, 64, 4, 7, "n01440764/img_1");
        let b = make_views(&img, 64, 4, 7, "n01440764/img_1");
        let c = make_views(&img, 64, 4, 8, "n01440764/img_1");
        assert_eq!(a.len(), 4);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.pixels, y.pixels);
            assert_eq!(x.crop, y.crop);
        }
        assert_eq!(a[1].pixels, a[0].pixels.flipped_horizontally());
        assert!(a[1].crop.flip);
        assert!(
            a[2].crop != c[2].crop || a[3].crop != c[3].crop,
            "seed must matter"
        );
        for v in &a[2..] {
            // Short-side fraction in [0.8, 1], up to the rounding of BOX halving and resizing.
            assert!(
                v.crop.width <= 375.0 * 1.02 && v.crop.width >= 375.0 * 0.8 * 0.97,
                "{:?}",
                v.crop
            );
        }
    }

    #[test]
    fn tiny_images_are_upsampled() {
        let (px, crop) = adm_center_crop(&gradient(20, 10), 32);
        assert_eq!((px.width, px.height), (32, 32));
        assert!((crop.height - 10.0).abs() < 1e-4);
    }
}
