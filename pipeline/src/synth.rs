//! Small synthetic labelled, captioned datasets for the demo, tests and benchmarks: each
//! image is a colour gradient with one shape whose kind is its class, drawn at an
//! ImageNet-like size, saved as JPEG or PNG in several colour modes, with a caption that
//! describes it. Written as an ImageFolder (synset folders, `.txt` captions beside the
//! images) and as WebDataset tars (`.jpg`/`.png` + `.txt` or `.json` + `.cls`).

use std::io::Write;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageFormat, RgbImage};

use maetok_nn::rng::SplitMix;

/// Real ImageNet synsets used as the demo's classes, with the shape each one draws.
pub const CLASSES: [(&str, &str); 4] = [
    ("n01440764", "circle"),
    ("n01443537", "square"),
    ("n01530575", "triangle"),
    ("n02085620", "ring"),
];

const COLOURS: [(&str, [u8; 3]); 6] = [
    ("red", [210, 40, 40]),
    ("green", [40, 170, 60]),
    ("blue", [40, 80, 210]),
    ("yellow", [230, 210, 40]),
    ("purple", [140, 50, 170]),
    ("white", [245, 245, 245]),
];

const SIZES: [(u32, u32); 6] = [
    (500, 375),
    (375, 500),
    (640, 480),
    (320, 240),
    (1024, 768),
    (200, 150),
];

/// One generated image and its caption.
pub struct Sample {
    pub image: RgbImage,
    pub caption: String,
    pub class: usize,
}

/// The `index`-th sample of class `class` (deterministic).
pub fn sample(class: usize, index: usize) -> Sample {
    let mut rng = SplitMix::for_view(index as u64, CLASSES[class].0, 7);
    let (w, h) = SIZES[rng.below(SIZES.len() as u64) as usize];
    let (fg_name, fg) = COLOURS[rng.below(COLOURS.len() as u64) as usize];
    let bg_a = [
        rng.below(256) as u8,
        rng.below(256) as u8,
        rng.below(256) as u8,
    ];
    let bg_b = [
        rng.below(256) as u8,
        rng.below(256) as u8,
        rng.below(256) as u8,
    ];
    let cx = w as f32 * (0.3 + 0.4 * rng.below(1000) as f32 / 1000.0);
    let cy = h as f32 * (0.3 + 0.4 * rng.below(1000) as f32 / 1000.0);
    let r = w.min(h) as f32 * (0.15 + 0.2 * rng.below(1000) as f32 / 1000.0);
    let shape = CLASSES[class].1;
    let mut img = RgbImage::new(w, h);
    for (x, y, px) in img.enumerate_pixels_mut() {
        let t = (x + y) as f32 / (w + h) as f32;
        let noise = (rng.next_u64() % 17) as f32 - 8.0;
        let mut c = [0u8; 3];
        for i in 0..3 {
            c[i] =
                (bg_a[i] as f32 * (1.0 - t) + bg_b[i] as f32 * t + noise).clamp(0.0, 255.0) as u8;
        }
        let (dx, dy) = (x as f32 - cx, y as f32 - cy);
        let d = (dx * dx + dy * dy).sqrt();
        let inside = match shape {
            "circle" => d < r,
            "square" => dx.abs() < r * 0.8 && dy.abs() < r * 0.8,
            "triangle" => dy < r * 0.7 && dy > -r && dx.abs() < (dy + r) * 0.6,
            _ => d < r && d > r * 0.6,
        };
        *px = image::Rgb(if inside { fg } else { c });
    }
    let caption = format!("a {fg_name} {shape} on a gradient background");
    Sample {
        image: img,
        caption,
        class,
    }
}

/// Encodes a sample in one of several formats/modes, chosen by `index`, to exercise the
/// decoder: baseline JPEG, grayscale JPEG, RGB PNG, RGBA PNG, grayscale PNG.
pub fn encode(s: &Sample, index: usize) -> (Vec<u8>, &'static str) {
    let mut out = std::io::Cursor::new(Vec::new());
    let dynimg = DynamicImage::ImageRgb8(s.image.clone());
    let ext = match index % 8 {
        5 => {
            DynamicImage::ImageLuma8(dynimg.to_luma8())
                .write_to(&mut out, ImageFormat::Jpeg)
                .expect("encode");
            "jpg"
        }
        6 => {
            DynamicImage::ImageRgba8(dynimg.to_rgba8())
                .write_to(&mut out, ImageFormat::Png)
                .expect("encode");
            "png"
        }
        7 => {
            DynamicImage::ImageLuma8(dynimg.to_luma8())
                .write_to(&mut out, ImageFormat::Png)
                .expect("encode");
            "png"
        }
        3 => {
            dynimg.write_to(&mut out, ImageFormat::Png).expect("encode");
            "png"
        }
        _ => {
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
                .encode_image(&dynimg)
                .expect("encode");
            "jpg"
        }
    };
    (out.into_inner(), ext)
}

/// Writes `per_class` images of each class as an ImageFolder with `.txt` captions.
/// Returns the root.
pub fn write_imagefolder(root: &Path, per_class: usize) -> std::io::Result<PathBuf> {
    write_imagefolder_from(root, 0, per_class)
}

/// As `write_imagefolder`, with sample indices `first..first + per_class` (a held-out set
/// disjoint from `write_imagefolder(root, first)`).
pub fn write_imagefolder_from(
    root: &Path,
    first: usize,
    per_class: usize,
) -> std::io::Result<PathBuf> {
    use rayon::prelude::*;
    for (synset, _) in CLASSES {
        std::fs::create_dir_all(root.join(synset))?;
    }
    // Drawing and encoding (PNG at up to 1024 × 768) is the slow part: one image per task.
    (0..CLASSES.len())
        .flat_map(|c| (first..first + per_class).map(move |i| (c, i)))
        .collect::<Vec<_>>()
        .into_par_iter()
        .try_for_each(|(c, i)| {
            let synset = CLASSES[c].0;
            let s = sample(c, i);
            let (bytes, ext) = encode(&s, i);
            let stem = format!("{synset}_{i:05}");
            let dir = root.join(synset);
            std::fs::write(dir.join(format!("{stem}.{ext}")), bytes)?;
            std::fs::write(dir.join(format!("{stem}.txt")), &s.caption)
        })?;
    Ok(root.to_path_buf())
}

fn tar_member(
    builder: &mut tar::Builder<std::fs::File>,
    name: &str,
    data: &[u8],
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    builder.append_data(&mut header, name, data)
}

/// Writes `shards` WebDataset tars of `per_shard` samples each, img2dataset-style: image,
/// caption in `.txt` (even samples) or in `.json` under `caption` (odd ones), class in
/// `.cls`. Returns the brace pattern naming them.
pub fn write_webdataset(root: &Path, shards: usize, per_shard: usize) -> std::io::Result<String> {
    std::fs::create_dir_all(root)?;
    let mut n = 0usize;
    for s in 0..shards {
        let path = root.join(format!("data-{s:06}.tar"));
        let mut b = tar::Builder::new(std::fs::File::create(&path)?);
        for _ in 0..per_shard {
            let class = n % CLASSES.len();
            let smp = sample(class, 1000 + n);
            let (bytes, ext) = encode(&smp, n);
            let key = format!("{s:05}{n:04}");
            tar_member(&mut b, &format!("{key}.{ext}"), &bytes)?;
            if n.is_multiple_of(2) {
                tar_member(&mut b, &format!("{key}.txt"), smp.caption.as_bytes())?;
            } else {
                let json = serde_json::json!({ "caption": smp.caption, "url": format!("https://example.com/{key}.{ext}") });
                tar_member(&mut b, &format!("{key}.json"), json.to_string().as_bytes())?;
            }
            tar_member(&mut b, &format!("{key}.cls"), class.to_string().as_bytes())?;
            n += 1;
        }
        b.into_inner()?.flush()?;
    }
    let last = shards.saturating_sub(1);
    Ok(format!("{}/data-{{000000..{last:06}}}.tar", root.display()))
}

/// Bad inputs a real crawl contains, written into `dir` (an ImageFolder class folder or a
/// flat folder), named `<prefix>_<case>`: a zero-byte file (`empty_file`), random bytes
/// named `.jpg` (`unknown_format`), a JPEG whose frame header says 0×0 and a PNG with a
/// damaged data chunk (`decode_error`), a JPEG and a PNG cut in half (`truncated`), and a
/// 4×3 image (`too_small`). Returns how many files.
pub fn write_bad_inputs(dir: &Path, prefix: &str) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    // A small photo-sized sample, so size limits in tests do not catch these first.
    let s = (900..)
        .map(|i| sample(0, i))
        .find(|s| s.image.width() * s.image.height() <= 320 * 240)
        .expect("small sample");
    let (jpeg, _) = encode(&s, 0);
    let (png, _) = encode(&s, 3);
    let write =
        |case: &str, bytes: &[u8]| std::fs::write(dir.join(format!("{prefix}_{case}")), bytes);
    write("empty.jpg", b"")?;
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    write("garbage.jpg", &garbage)?;
    let mut corrupt_jpeg = jpeg.clone();
    let sof = corrupt_jpeg
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("baseline JPEG has SOF0");
    corrupt_jpeg[sof + 5..sof + 9].fill(0); // height and width = 0
    write("corrupt.jpg", &corrupt_jpeg)?;
    let mut corrupt_png = png.clone();
    let idat = corrupt_png
        .windows(4)
        .position(|w| w == b"IDAT")
        .expect("PNG has IDAT");
    for b in &mut corrupt_png[idat + 10..idat + 60] {
        *b ^= 0x5A;
    }
    write("corrupt.png", &corrupt_png)?;
    write("truncated.jpg", &jpeg[..jpeg.len() / 2])?;
    write("truncated.png", &png[..png.len() / 2])?;
    let mut tiny = std::io::Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(RgbImage::new(4, 3))
        .write_to(&mut tiny, ImageFormat::Png)
        .expect("encode");
    write("tiny.png", &tiny.into_inner())?;
    Ok(7)
}
