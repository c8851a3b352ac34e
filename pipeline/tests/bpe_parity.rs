//! The caption tokenizer against open_clip (fixtures from tests/fixtures/gen/gen_bpe.py):
//! every caption's cleaned text and `open_clip.tokenize` ids, with the vocabulary loaded from
//! open_clip's gz, from the tokenizer.json made of it, and from that file with its merges
//! rewritten as `[a, b]` pairs.

use std::path::{Path, PathBuf};
use std::time::Instant;

use maetok_pipeline::caption::{clean_lower, ClipBpe, CONTEXT_LEN};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/bpe")
}

struct Case {
    name: String,
    text: String,
    cleaned: String,
    ids: Vec<u32>,
}

fn cases() -> Vec<Case> {
    let raw = std::fs::read_to_string(fixtures().join("captions.json")).unwrap();
    let doc: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(doc["context_length"], CONTEXT_LEN);
    let cases: Vec<Case> = doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            name: c["name"].as_str().unwrap().to_string(),
            text: c["text"].as_str().unwrap().to_string(),
            cleaned: c["cleaned"].as_str().unwrap().to_string(),
            ids: c["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect(),
        })
        .collect();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    cases
}

/// Checks every case; returns the names that differ (with details printed).
fn check_all(bpe: &ClipBpe, label: &str) {
    assert_eq!(bpe.vocab_size(), 49408, "{label}");
    assert_eq!((bpe.sot_id(), bpe.eot_id()), (49406, 49407), "{label}");
    let mut failed = Vec::new();
    for case in cases() {
        let ids = bpe.tokenize(&case.text, CONTEXT_LEN);
        let padded = bpe.tokenize_padded(&case.text, CONTEXT_LEN);
        let mut ok = ids == case.ids;
        ok &= padded.len() == CONTEXT_LEN
            && padded[..ids.len()] == ids[..]
            && padded[ids.len()..].iter().all(|&v| v == 0);
        if !ok {
            eprintln!(
                "{label}: {}: {:?}\n  cleaned  {:?}\n  expected {:?}\n  got      {:?}",
                case.name,
                case.text,
                clean_lower(&case.text),
                case.ids,
                ids
            );
            failed.push(case.name);
        }
    }
    assert!(
        failed.is_empty(),
        "{label}: {} cases differ: {failed:?}",
        failed.len()
    );
}

#[test]
fn cleaning_matches_open_clip() {
    let mut failed = Vec::new();
    for case in cases() {
        let got = clean_lower(&case.text);
        if got != case.cleaned {
            eprintln!("{}: expected {:?}, got {:?}", case.name, case.cleaned, got);
            failed.push(case.name);
        }
    }
    assert!(
        failed.is_empty(),
        "{} cases differ: {failed:?}",
        failed.len()
    );
}

#[test]
fn open_clip_gz_matches() {
    let bpe = ClipBpe::from_file(fixtures().join("bpe_simple_vocab_16e6.txt.gz")).unwrap();
    check_all(&bpe, "gz");
}

#[test]
fn tokenizer_json_matches() {
    let bpe = ClipBpe::from_file(fixtures().join("tokenizer.json")).unwrap();
    check_all(&bpe, "tokenizer.json");
}

#[test]
fn tokenizer_json_with_pair_merges_matches() {
    let raw = std::fs::read_to_string(fixtures().join("tokenizer.json")).unwrap();
    let mut doc: Value = serde_json::from_str(&raw).unwrap();
    let merges = doc["model"]["merges"].as_array_mut().unwrap();
    for m in merges.iter_mut() {
        let s = m.as_str().unwrap().to_string();
        let (a, b) = s.split_once(' ').unwrap();
        *m = serde_json::json!([a, b]);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
    let bpe = ClipBpe::from_file(&path).unwrap();
    check_all(&bpe, "tokenizer.json with [a, b] merges");
}

#[test]
fn unpacked_gz_matches() {
    use std::io::Read;
    let gz = std::fs::read(fixtures().join("bpe_simple_vocab_16e6.txt.gz")).unwrap();
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut text)
        .unwrap();
    let bpe = ClipBpe::from_bytes("bpe_simple_vocab_16e6.txt", &text).unwrap();
    check_all(&bpe, "unpacked txt");
}

/// Not a check: prints load time and captions/s on the fixture set, on one thread and on
/// rayon's pool sharing one tokenizer (most useful with `--release`).
#[test]
fn throughput() {
    use rayon::prelude::*;
    let start = Instant::now();
    let bpe = ClipBpe::from_file(fixtures().join("bpe_simple_vocab_16e6.txt.gz")).unwrap();
    let load = start.elapsed().as_secs_f64();
    let texts: Vec<String> = cases().into_iter().map(|c| c.text).collect();
    let rounds = 200;
    let n = rounds * texts.len();
    let start = Instant::now();
    let mut total = 0usize;
    for _ in 0..rounds {
        for t in &texts {
            total += bpe.tokenize(t, CONTEXT_LEN).len();
        }
    }
    let one = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let par: usize = (0..n)
        .into_par_iter()
        .map(|i| bpe.tokenize(&texts[i % texts.len()], CONTEXT_LEN).len())
        .sum();
    let all = start.elapsed().as_secs_f64();
    assert_eq!(par, total);
    eprintln!(
        "caption BPE: load {load:.3} s; {n} captions: {:.0} captions/s on one thread, \
         {:.0} captions/s on {} rayon threads",
        n as f64 / one,
        n as f64 / all,
        rayon::current_num_threads()
    );
}
