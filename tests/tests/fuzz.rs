//! Bounded, seeded fuzzing of the parsers that read what users hand us: image bytes (JPEG,
//! PNG), WebDataset tars, safetensors weight files, training-config TOML and checkpoint
//! `config.json`. Each case mutates a valid input (bit flips, byte overwrites, insertions,
//! deletions, truncation, splices of a second input) with a counter-based generator, runs
//! the real parser, and asserts that it returns (an error is fine) without panicking and
//! within a time bound. `MAETOK_FUZZ_SCALE` multiplies the case counts (the long run in
//! docs/benchmarks.md); the default is sized for CI (about 2,300 cases).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};

use maetok_nn::rng::SplitMix;

/// No single parse may take longer than this (a hang or a decompression bomb).
const CASE_LIMIT: Duration = Duration::from_secs(10);

fn scale() -> usize {
    std::env::var("MAETOK_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

/// One mutation of `seed` (and, for splices, of `other`), chosen by `r`.
fn mutate(seed: &[u8], other: &[u8], r: &mut SplitMix) -> Vec<u8> {
    let mut v = seed.to_vec();
    let edits = 1 + r.below(8) as usize;
    for _ in 0..edits {
        if v.is_empty() {
            v.push(r.next_u64() as u8);
            continue;
        }
        let at = r.below(v.len() as u64) as usize;
        match r.below(7) {
            0 => v[at] ^= 1 << r.below(8),
            1 => v[at] = r.next_u64() as u8,
            // Interesting bytes: sizes and lengths near their limits.
            2 => v[at] = [0x00, 0xff, 0x7f, 0x80, 0x01][r.below(5) as usize],
            3 => {
                let n = 1 + r.below(16) as usize;
                let bytes: Vec<u8> = (0..n).map(|_| r.next_u64() as u8).collect();
                v.splice(at..at, bytes);
            }
            4 => {
                let n = (1 + r.below(64) as usize).min(v.len() - at);
                v.drain(at..at + n);
            }
            5 => v.truncate(at),
            _ => {
                if !other.is_empty() {
                    let from = r.below(other.len() as u64) as usize;
                    let n = (1 + r.below(256) as usize).min(other.len() - from);
                    let end = (at + n).min(v.len());
                    v.splice(at..end, other[from..from + n].iter().copied());
                }
            }
        }
    }
    v
}

/// Runs `cases` mutations of `seeds` through `parse`; panics name the case and seed.
fn fuzz(name: &str, seeds: &[Vec<u8>], cases: usize, parse: impl Fn(&[u8])) -> usize {
    let mut r = SplitMix::new(0x5eed_0000 ^ name.len() as u64 ^ (name.as_bytes()[0] as u64) << 8);
    let mut slowest = Duration::ZERO;
    for case in 0..cases {
        let a = &seeds[case % seeds.len()];
        let b = &seeds[(case + 1) % seeds.len()];
        let bytes = mutate(a, b, &mut r);
        let t = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| parse(&bytes)));
        let took = t.elapsed();
        slowest = slowest.max(took);
        if outcome.is_err() {
            let dump = std::env::temp_dir().join(format!("maetok-fuzz-{name}-{case}.bin"));
            std::fs::write(&dump, &bytes).ok();
            panic!(
                "{name} case {case} panicked; input saved to {}",
                dump.display()
            );
        }
        assert!(took < CASE_LIMIT, "{name} case {case} took {took:?}");
    }
    eprintln!("fuzz {name}: {cases} cases, slowest {slowest:?}");
    cases
}

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(maetok_e2e::fixtures().join(rel)).unwrap()
}

#[test]
fn the_parsers_of_user_input_never_panic() {
    // A panic inside a case is caught and reported by `fuzz`; keep the default hook quiet.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = catch_unwind(run_all);
    std::panic::set_hook(hook);
    match result {
        Ok(total) => eprintln!("fuzz: {total} cases in all"),
        Err(e) => std::panic::resume_unwind(e),
    }
}

fn run_all() -> usize {
    let k = scale();
    let tmp = tempfile::tempdir().unwrap();
    let mut total = 0;

    // Images: small JPEGs and PNGs (synthetic, so cases stay fast), the decoder used by
    // preprocess, with its pixel limit.
    let jpegs: Vec<Vec<u8>> = (0..4).map(|i| maetok_e2e::jpeg(i % 4, i)).collect();
    let opts = maetok_pipeline::image::decode::DecodeOptions {
        max_pixels: 4_000_000,
        ..Default::default()
    };
    total += fuzz("jpeg", &jpegs, 700 * k, |b| {
        let _ = maetok_pipeline::image::decode::decode_rgb8(b, &opts);
    });
    let pngs: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            let img = maetok_pipeline::synth::sample(i, i).image;
            let small = image::imageops::thumbnail(&img, 48, 48);
            let mut out = std::io::Cursor::new(Vec::new());
            small.write_to(&mut out, image::ImageFormat::Png).unwrap();
            out.into_inner()
        })
        .collect();
    total += fuzz("png", &pngs, 500 * k, |b| {
        let _ = maetok_pipeline::image::decode::decode_rgb8(b, &opts);
    });

    // Tars: read as a WebDataset input, every event consumed.
    let tar_path = tmp.path().join("seed.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&tar_path).unwrap());
        maetok_e2e::tar_member(&mut b, "s/0.jpg", &jpegs[0]);
        maetok_e2e::tar_member(&mut b, "s/0.txt", b"a caption");
        maetok_e2e::tar_member(&mut b, "s/0.cls", b"3");
        maetok_e2e::tar_member(&mut b, "s/1.json", br#"{"caption": "x"}"#);
        maetok_e2e::tar_member(&mut b, "s/1.png", &pngs[0]);
        b.finish().unwrap();
    }
    let tars = vec![std::fs::read(&tar_path).unwrap()];
    let case_tar = tmp.path().join("case.tar");
    total += fuzz("tar", &tars, 400 * k, |b| {
        std::fs::write(&case_tar, b).unwrap();
        let options = maetok_pipeline::source::SourceOptions {
            layout: Default::default(),
            labels_csv: None,
            caption_fields: vec!["caption".into()],
        };
        let path = case_tar.display().to_string();
        if let Ok(ds) = maetok_pipeline::source::Dataset::open(&[path], options, 0, 1) {
            ds.for_each_event(Default::default(), |_| true);
        }
    });

    // Safetensors: the weight loader every model and teacher goes through.
    let st = vec![fixture("lpips/heads.safetensors")];
    let case_st = tmp.path().join("case.safetensors");
    total += fuzz("safetensors", &st, 300 * k, |b| {
        std::fs::write(&case_st, b).unwrap();
        let _ = maetok_nn::Weights::load(&case_st, "fuzz");
    });

    // Training configs (TOML) and checkpoint config.json.
    let tomls: Vec<Vec<u8>> = [
        "tokenizer-tiny.toml",
        "maetok-b-128.toml",
        "demo-tokenizer.toml",
    ]
    .iter()
    .map(|n| {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../configs")
                .join(n),
        )
        .unwrap()
    })
    .collect();
    total += fuzz("toml", &tomls, 300 * k, |b| {
        let _ = maetok_trainer::train::config::TrainConfig::parse(&String::from_utf8_lossy(b));
    });
    let jsons = vec![fixture("maetok/movq_64/config.json")];
    let case_json = tmp.path().join("config.json");
    total += fuzz("config.json", &jsons, 200 * k, |b| {
        std::fs::write(&case_json, b).unwrap();
        let _ = maetok_models::maetok::AeConfig::load(&case_json);
    });
    assert!(total >= 2_000 * k, "{total} cases");
    total
}
