//! Bad input never aborts a job and is counted by reason, in the manifest and one line per
//! case in the rejects log; good samples around it all arrive. Wrong flags and config values
//! fail up front with an error naming them and what is allowed.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use maetok_e2e::{fails_naming, jpeg, manifest, preprocess, run_ok, tar_member};
use maetok_pipeline::synth;

fn rejects_log(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("__maetok__/rejects.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn counts(m: &serde_json::Value) -> BTreeMap<String, u64> {
    m["stats"]["rejects"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect()
}

#[test]
fn bad_files_in_folders_are_counted_by_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("flat");
    std::fs::create_dir_all(&folder).unwrap();
    for i in 0..6 {
        std::fs::write(folder.join(format!("good_{i}.jpg")), jpeg(i % 4, i)).unwrap();
    }
    synth::write_bad_inputs(&folder, "bad").unwrap();
    std::os::unix::fs::symlink(
        folder.join("does-not-exist.jpg"),
        folder.join("bad_dangling.jpg"),
    )
    .unwrap();
    std::fs::write(folder.join("bad_text.png"), b"this is not a PNG").unwrap();
    // 1024x768 is over the pixel limit set below; the synthetic sizes are at most 1024x768.
    let big = (0..200)
        .map(|i| synth::sample(0, i))
        .find(|s| s.image.width() == 1024)
        .expect("a 1024-wide sample");
    std::fs::write(folder.join("bad_huge.jpg"), synth::encode(&big, 0).0).unwrap();
    let out = tmp.path().join("out");
    let o = preprocess(folder.to_str().unwrap(), &out, &["--max-pixels", "700000"]);
    let m = manifest(&out, "manifest.json");
    let want: BTreeMap<String, u64> = [
        ("decode_error", 2), // JPEG with a 0x0 frame, PNG with damaged data
        ("empty_file", 1),
        ("too_many_pixels", 1),
        ("too_small", 1),
        ("truncated", 2),      // JPEG and PNG cut in half
        ("unknown_format", 2), // random bytes named .jpg, text named .png
        ("unreadable", 1),     // dangling symlink
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let got = counts(&m);
    assert_eq!(got, want, "stdout: {}", String::from_utf8_lossy(&o.stdout));
    assert_eq!(m["stats"]["images"], 6);
    let log = rejects_log(&out);
    assert_eq!(log.len() as u64, got.values().sum::<u64>());
    for line in &log {
        assert_eq!(line["action"], "skipped");
        assert!(line["key"].as_str().unwrap().starts_with("bad_"), "{line}");
        assert!(!line["detail"].as_str().unwrap().is_empty());
    }
}

#[test]
fn bad_tars_yield_everything_before_the_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wds");
    std::fs::create_dir_all(&dir).unwrap();
    // Tar 0: good samples, one without caption, one with only a caption, stray members.
    let mut b = tar::Builder::new(std::fs::File::create(dir.join("part-0.tar")).unwrap());
    tar_member(&mut b, "s/000.jpg", &jpeg(0, 1));
    tar_member(&mut b, "s/000.txt", b"a caption from txt");
    tar_member(&mut b, "s/001.jpg", &jpeg(1, 2));
    tar_member(
        &mut b,
        "s/001.json",
        br#"{"top_caption": "a caption from json", "url": "u"}"#,
    );
    tar_member(
        &mut b,
        "s/002.png",
        &synth::encode(&synth::sample(2, 3), 3).0,
    );
    tar_member(&mut b, "s/002.mp4", b"not an image");
    tar_member(&mut b, "s/003.txt", b"caption without image");
    tar_member(&mut b, "s/004.jpg", &jpeg(3, 4));
    tar_member(&mut b, "s/004.txt", b"last good sample before the end");
    b.into_inner().unwrap().flush().unwrap();
    // Tar 1: two samples, then cut in the middle of the third image.
    let path1 = dir.join("part-1.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&path1).unwrap());
    for i in 0..3 {
        tar_member(&mut b, &format!("t/{i:03}.jpg"), &jpeg(i, 10 + i));
        tar_member(
            &mut b,
            &format!("t/{i:03}.txt"),
            format!("caption {i}").as_bytes(),
        );
    }
    b.into_inner().unwrap().flush().unwrap();
    let whole = std::fs::read(&path1).unwrap();
    // End blocks (1024) + t/002.txt (header + one data block) precede; cut inside t/002.jpg.
    let cut = whole.len() - 512 * 4 - jpeg(2, 12).len() / 2;
    std::fs::write(&path1, &whole[..cut]).unwrap();

    let out = tmp.path().join("out");
    let pattern = format!("{}/part-{{0..1}}.tar", dir.display());
    preprocess(&pattern, &out, &[]);
    let m = manifest(&out, "manifest.json");
    assert_eq!(
        m["stats"]["images"], 6,
        "000 001 002 004 from tar 0, 000 001 from tar 1"
    );
    assert_eq!(
        m["stats"]["missing_captions"], 1,
        "s/002 has neither txt nor json"
    );
    let want: BTreeMap<String, u64> = [
        ("no_image", 1),
        ("non_image_member", 1),
        ("tar_truncated", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(counts(&m), want);
    let log = rejects_log(&out);
    let reasons: Vec<(&str, &str, &str)> = log
        .iter()
        .map(|l| {
            (
                l["key"].as_str().unwrap(),
                l["reason"].as_str().unwrap(),
                l["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [
            ("s/002", "non_image_member", "skipped"),
            ("s/002", "missing_caption", "kept"),
            ("s/003", "no_image", "skipped"),
            ("t/002", "tar_truncated", "skipped"),
        ]
    );
    // Captions came from the right places.
    let inspect = run_ok(&["shards", "inspect", out.to_str().unwrap(), "--rows", "6"]);
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(
        text.contains("a caption from txt") && text.contains("a caption from json"),
        "{text}"
    );
}

/// Runs `maetok args`, expects failure, and checks stderr names every needle.
#[test]
fn wrong_flags_and_config_values_name_what_is_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o");
    let o = out.to_str().unwrap();
    let flag = fails_naming(
        &[
            "preprocess",
            "--input",
            "x",
            "--output",
            o,
            "--png-compression",
            "ultra",
        ],
        &["ultra", "fast", "default", "best"],
    );
    assert_eq!(flag.status.code(), Some(2), "clap's usage error");
    fails_naming(
        &[
            "preprocess",
            "--input",
            "x",
            "--output",
            o,
            "--resolution",
            "250",
        ],
        &["`resolution` = 250", "multiple of 16"],
    );
    let cfg = tmp.path().join("bad.toml");
    std::fs::write(&cfg, "inputs = [\"x\"]\nresolutoin = 256\n").unwrap();
    fails_naming(
        &[
            "preprocess",
            "--config",
            cfg.to_str().unwrap(),
            "--output",
            o,
        ],
        &["bad.toml", "resolutoin", "resolution"],
    );
    fails_naming(
        &[
            "preprocess",
            "--input",
            "/nonexistent/folder",
            "--output",
            o,
        ],
        &["/nonexistent/folder"],
    );
    fails_naming(
        &[
            "preprocess",
            "--input",
            "x",
            "--output",
            o,
            "--node-rank",
            "2",
            "--num-nodes",
            "2",
        ],
        &["--node-rank 2", "--num-nodes 2"],
    );
}

#[test]
fn a_panic_on_one_sample_is_a_counted_reject() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = synth::write_imagefolder(&tmp.path().join("f"), 3).unwrap();
    let out = tmp.path().join("out");
    let o = maetok_e2e::maetok()
        .args([
            "preprocess",
            "--input",
            folder.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--threads",
            "2",
            "--no-progress",
        ])
        .env("MAETOK_PANIC_ON_KEY", "n01443537/n01443537_00001")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = manifest(&out, "manifest.json");
    assert_eq!(m["complete"], true);
    assert_eq!(m["stats"]["images"], 11);
    assert_eq!(
        counts(&m),
        [("internal_error".to_string(), 1)].into_iter().collect()
    );
    let log = rejects_log(&out);
    assert_eq!(log[0]["key"], "n01443537/n01443537_00001");
    assert!(log[0]["detail"]
        .as_str()
        .unwrap()
        .contains("injected panic"));
}
