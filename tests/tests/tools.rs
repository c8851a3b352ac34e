//! `shards verify` catches every kind of damage (exit status 1), `shards inspect` prints a
//! summary, `demo` runs end to end, and `env` shows libtorch linked without library paths.

use maetok_e2e::{preprocess, run, run_ok};
use maetok_pipeline::synth;

#[test]
fn verify_detects_damage_and_inspect_summarises() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = synth::write_imagefolder(&tmp.path().join("f"), 4).unwrap();
    let out = tmp.path().join("out");
    let o = out.to_str().unwrap();
    preprocess(folder.to_str().unwrap(), &out, &["--shard-rows", "6"]);
    let ok = run_ok(&["shards", "verify", o, "--deep"]);
    assert!(String::from_utf8_lossy(&ok.stdout).contains("OK"));
    let text = String::from_utf8_lossy(&run_ok(&["shards", "inspect", o]).stdout).into_owned();
    for needle in [
        "complete",
        "16 (16 rows",
        "ImageNet-1k",
        "hog (16x16 tokens x 108",
        "n01440764/n01440764_00000 view 0 label 0",
    ] {
        assert!(
            text.contains(needle),
            "inspect output lacks {needle:?}:\n{text}"
        );
    }

    let shard = out.join("shard-00001.parquet");
    let original = std::fs::read(&shard).unwrap();
    let mut flipped = original.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xFF;
    std::fs::write(&shard, &flipped).unwrap();
    let bad = run(&["shards", "verify", o]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("shard-00001.parquet: sha256"));
    std::fs::write(&shard, &original).unwrap();

    std::fs::write(out.join("shard-00009.parquet.tmp"), b"half").unwrap();
    let bad = run(&["shards", "verify", o]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("unfinished temporary file"));
    std::fs::remove_file(out.join("shard-00009.parquet.tmp")).unwrap();

    std::fs::remove_file(out.join("shard-00000.parquet")).unwrap();
    let bad = run(&["shards", "verify", o]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("shard-00000.parquet: cannot stat"));
}

#[test]
fn demo_runs_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let o = run_ok(&[
        "demo",
        "--output",
        out.to_str().unwrap(),
        "--per-class",
        "3",
        "--tars",
        "1",
        "--per-tar",
        "4",
        "--views",
        "2",
        "--train-steps",
        "0",
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("verify --deep") && text.contains("OK"),
        "{text}"
    );
    assert!(out.join("views.png").exists() && out.join("summary.md").exists());
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(
        summary.contains("tar_truncated")
            && summary.contains("truncated")
            && summary.contains("too_small"),
        "{summary}"
    );
}

/// The demo's tokenizer part with its default schedule: preprocess → stage 1 → stage 2 →
/// reconstructions. On held-out images, stage 2 beats the per-image mean-colour baseline by
/// 3 dB and is at least as good as stage 1 (training is deterministic for a given thread
/// count; docs/training.md has the measured figures).
#[test]
fn demo_trains_a_tokenizer_that_beats_the_mean_colour_baseline() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let o = run_ok(&[
        "demo",
        "--output",
        out.to_str().unwrap(),
        "--tars",
        "1",
        "--per-tar",
        "4",
        // A short SiT schedule: the diffusion part runs end to end (its default 400 steps
        // take about 2.5 minutes more).
        "--sit-steps",
        "40",
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    let sit = text
        .lines()
        .find(|l| l.starts_with("demo sit: velocity loss"))
        .unwrap_or_else(|| panic!("{text}"));
    println!("{sit}");
    let losses: Vec<f64> = sit
        .split_whitespace()
        .filter_map(|w| w.parse::<f64>().ok().filter(|v| v.fract() != 0.0))
        .collect();
    assert!(
        losses.len() == 2 && losses[1] < losses[0],
        "the SiT loss does not fall: {sit}"
    );
    assert!(out.join("sit.png").exists());
    let line = text
        .lines()
        .find(|l| l.starts_with("demo tokenizer: PSNR on the training images"))
        .unwrap_or_else(|| panic!("{text}"));
    println!("{line}");
    let held = &line[line.find("held out:").unwrap_or_else(|| panic!("{line}"))..];
    let num = |after: &str| -> f64 {
        let rest = &held[held
            .find(after)
            .unwrap_or_else(|| panic!("{after}: {held}"))
            + after.len()..];
        rest.trim_start()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (base, s1, s2) = (num("mean-colour"), num("stage 1"), num("stage 2"));
    assert!(
        s2 >= base + 3.0,
        "held out: stage 2 {s2} dB vs baseline {base} dB: {line}"
    );
    assert!(s2 >= s1, "held out: stage 2 {s2} dB below stage 1 {s1} dB");
    assert!(out.join("tokenizer.png").exists());
    assert!(out.join("runs/tokenizer/loss.png").exists());
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(
        summary.contains("## tokenizer")
            && summary.contains("held-out")
            && summary.contains("## diffusion")
            && summary.contains("## evaluation")
            && summary.contains("(eval/generation/report.md)"),
        "{summary}"
    );
    // The demo ends with `maetok eval` of the tokenizer, the samples and the latents.
    let report = |what: &str| -> serde_json::Value {
        let p = out.join("eval").join(what).join("report.json");
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p:?}: {e}")))
            .unwrap()
    };
    let t = report("tokenizer");
    assert!(
        t["psnr"].as_f64().unwrap() > 15.0 && t["rfid"].as_f64().is_some(),
        "{t}"
    );
    assert_eq!(t["inception"]["random_weights"], true);
    let g = report("generation");
    for k in ["fid", "is", "precision", "recall"] {
        assert!(g[k].as_f64().is_some_and(f64::is_finite), "{k}: {g}");
    }
    assert_eq!(g["samples"]["images"], 32);
    let l = report("latents");
    let p = l["folders"][0]["probe_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&p), "{l}");
}

#[test]
fn env_runs_libtorch_without_library_paths() {
    let o = maetok_e2e::maetok()
        .arg("env")
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("sum([1,2,3]) = 6"));
}

#[test]
fn every_subcommand_has_help() {
    for args in [
        vec!["--help"],
        vec!["preprocess", "--help"],
        vec!["shards", "--help"],
        vec!["shards", "verify", "--help"],
        vec!["shards", "inspect", "--help"],
        vec!["shards", "merge", "--help"],
        vec!["demo", "--help"],
        vec!["plot", "--help"],
        vec!["env", "--help"],
    ] {
        let o = run_ok(&args);
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("Usage:"),
            "{args:?}"
        );
    }
}
