//! What a training job reads, it checks first: configs against themselves and against the
//! shards, checkpoint `config.json`s against their weights, run state against its dataset,
//! weights for NaN, shard files against their manifest. Each case exits with status 1 and
//! an error naming the file, the key and what is allowed; none panics, none trains on
//! wrong data, none publishes a non-finite step folder.

use std::path::{Path, PathBuf};

use maetok_e2e::{fails_naming, fixtures, run_ok, synth_shards};

/// A 64-px shard folder (2 views, HOG) of the synthetic ImageFolder, 24 images.
fn shards(dir: &Path) -> PathBuf {
    synth_shards(
        dir,
        6,
        &["--views", "2", "--shard-rows", "10", "--resolution", "64"],
    )
}

/// The tiny preset, 8 steps of batch 4, with `(from, to)` text replacements.
fn config(dir: &Path, name: &str, shards: &Path, edits: &[(&str, &str)]) -> PathBuf {
    let mut text =
        std::fs::read_to_string(fixtures().join("../../configs/tokenizer-tiny.toml")).unwrap();
    let base: [(&str, &str); 6] = [
        ("batch_size = 8", "batch_size = 4"),
        ("steps = 300", "steps = 8"),
        ("warmup_steps = 20", "warmup_steps = 2"),
        ("checkpoint_every = 100", "checkpoint_every = 4"),
        ("sample_every = 100", "sample_every = 0"),
        ("log_every = 20", "log_every = 4"),
    ];
    for (from, to) in base.iter().chain(edits) {
        assert!(text.contains(from), "the tiny preset has no `{from}`");
        text = text.replacen(from, to, 1);
    }
    let text = text.replace(
        "shards = \"demo-out/shards/imagefolder\"",
        &format!("shards = {:?}", shards.to_str().unwrap()),
    );
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn train(cfg: &Path, run: &Path, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = ["train", "tokenizer", "--config"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    a.push(cfg.display().to_string());
    a.push("--run".into());
    a.push(run.display().to_string());
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn bad_training_configs_fail_before_the_first_step_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let shards = shards(tmp.path());
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "patch_size = 16",
            "patch_size = 0",
            &["model.patch_size = 0", "at least 1"],
        ),
        (
            "width = 64",
            "width = 0",
            &["model.width = 0", "at least 1"],
        ),
        (
            "num_latent_tokens = 16",
            "num_latent_tokens = 0",
            &["model.num_latent_tokens = 0"],
        ),
        (
            "enc_heads = 2",
            "enc_heads = 3",
            &["model.enc_heads", "one of 1, 2, 4"],
        ),
        ("lr = 1e-3", "lr = nan", &["optim.lr = NaN", "finite"]),
        ("lr = 1e-3", "lr = inf", &["optim.lr = inf", "finite"]),
        ("lr = 1e-3", "lr = -1e-3", &["optim.lr = -0.001", "above 0"]),
        (
            "ema_decay = 0.99",
            "ema_decay = 1.5",
            &["optim.ema_decay = 1.5", "[0, 1]"],
        ),
        (
            "image_size = 64",
            "image_size = 128",
            &["64×64 views", "128×128", "model.image_size = 64"],
        ),
        (
            "target = \"hog\"",
            "target = \"dinov2\"",
            &["`dinov2`", "shards"],
        ),
    ];
    for (i, (from, to, needles)) in cases.iter().enumerate() {
        let cfg = config(tmp.path(), &format!("c{i}.toml"), &shards, &[(from, to)]);
        let run = tmp.path().join(format!("run{i}"));
        let o = fails_naming(&args(&train(&cfg, &run, &[])), needles);
        let err = String::from_utf8_lossy(&o.stderr);
        // The file is named, and no step folder was written.
        assert!(
            err.contains(&format!("c{i}.toml")) || err.contains("shards"),
            "{err}"
        );
        assert!(
            !run.join("latest").exists(),
            "case {to}: a step folder was written"
        );
        assert!(
            !run.join(".lock").exists(),
            "case {to}: the lock file stayed"
        );
    }
}

/// A copy of the `movq_64` fixture checkpoint with `config.json` edited by `edit`.
fn checkpoint(dir: &Path, name: &str, edit: impl Fn(&mut serde_json::Value)) -> PathBuf {
    let src = fixtures().join("maetok/movq_64");
    let out = dir.join(name);
    std::fs::create_dir_all(&out).unwrap();
    std::fs::copy(src.join("model.safetensors"), out.join("model.safetensors")).unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    edit(&mut cfg);
    std::fs::write(out.join("config.json"), cfg.to_string()).unwrap();
    out
}

#[test]
fn checkpoint_configs_that_do_not_fit_their_weights_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (images, _) = maetok_e2e::photo_folder(tmp.path());
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Edit, &[&str])> = vec![
        (
            "heads0",
            Box::new(|c| c["enc_num_heads"] = 0.into()),
            &["enc_num_heads", "at least 1"],
        ),
        (
            "heads3",
            Box::new(|c| c["dec_num_heads"] = 3.into()),
            &["dec_num_heads", "3 heads", "width 32"],
        ),
        (
            "array",
            Box::new(|c| *c = serde_json::json!([64, 64, 32])),
            &["config.json", "expected a JSON object", "an array"],
        ),
        (
            "size",
            Box::new(|c| c["image_size"] = 128.into()),
            &["`image_size` = 128", "serves 64 px"],
        ),
    ];
    for (name, edit, needles) in cases {
        let ck = checkpoint(tmp.path(), name, edit);
        let out = tmp.path().join(format!("rec-{name}"));
        let mut needles = needles.to_vec();
        let ck_s = ck.display().to_string();
        needles.push(&ck_s);
        fails_naming(
            &[
                "reconstruct",
                "--checkpoint",
                &ck_s,
                "--input",
                images.to_str().unwrap(),
                "--output",
                out.to_str().unwrap(),
            ],
            &needles,
        );
    }
}

/// Writes `src`'s safetensors to `dst` with one value of tensor `key` set to NaN.
fn poison(src: &Path, dst: &Path, key: &str) {
    let tensors = tch::Tensor::read_safetensors(src).unwrap();
    let (_, t) = tensors.iter().find(|(k, _)| k == key).expect("key");
    // A view: filling it writes into the tensor that is saved.
    let _ = t.view([-1]).get(0).fill_(f64::NAN);
    tch::Tensor::write_safetensors(&tensors, dst).unwrap();
}

#[test]
fn weights_with_nan_are_refused_naming_the_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    let (images, _) = maetok_e2e::photo_folder(tmp.path());
    let ck = checkpoint(tmp.path(), "nan", |_| {});
    let key = "decoder.model.blocks.0.mlp.fc1.weight";
    poison(
        &fixtures().join("maetok/movq_64/model.safetensors"),
        &ck.join("model.safetensors"),
        key,
    );
    let out = tmp.path().join("rec");
    fails_naming(
        &[
            "reconstruct",
            "--checkpoint",
            ck.to_str().unwrap(),
            "--input",
            images.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ],
        &[key, "1 non-finite values", "model.safetensors"],
    );
    assert!(!out.join("metrics.json").exists());

    // A teacher with a NaN weight: refused before any feature is computed (it used to
    // write all-NaN features and exit 0).
    let teacher = tmp.path().join("dinov2");
    std::fs::create_dir_all(&teacher).unwrap();
    let src = fixtures().join("teachers/dinov2_hf");
    std::fs::copy(src.join("config.json"), teacher.join("config.json")).unwrap();
    let key = "encoder.layer.0.mlp.fc1.weight";
    poison(
        &src.join("model.safetensors"),
        &teacher.join("model.safetensors"),
        key,
    );
    let feats = tmp.path().join("f.safetensors");
    fails_naming(
        &[
            "teacher",
            "features",
            "--teacher",
            "dinov2",
            "--weights",
            teacher.join("model.safetensors").to_str().unwrap(),
            "--input",
            images.to_str().unwrap(),
            "--output",
            feats.to_str().unwrap(),
            "--resolution",
            "64",
        ],
        &[key, "non-finite values"],
    );
    assert!(!feats.exists());
}

#[test]
fn a_diverged_update_publishes_no_step_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let shards = shards(tmp.path());
    // Finite, but beyond f32: the first update makes the weights infinite.
    let cfg = config(
        tmp.path(),
        "huge.toml",
        &shards,
        &[
            ("lr = 1e-3", "lr = 1e300"),
            ("warmup_steps = 2", "warmup_steps = 0"),
        ],
    );
    let run = tmp.path().join("run");
    fails_naming(
        &args(&train(&cfg, &run, &["--max-steps", "1"])),
        &["after step 1", "non-finite values", "the initialisation"],
    );
    assert!(!run.join("latest").exists());
    let steps: Vec<_> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .collect();
    assert!(steps.is_empty(), "{steps:?}");
    assert!(!run.join(".lock").exists());
    // The run never got a step folder, so a corrected config starts it again (the
    // leftover config.toml does not refuse it).
    let fixed = config(tmp.path(), "fixed.toml", &shards, &[]);
    run_ok(&args(&train(&fixed, &run, &["--max-steps", "4"])));
    assert!(run.join("checkpoints/step-0000004/state.json").exists());
}

/// Trains 4 steps of 8 and returns the run folder.
fn four_steps(tmp: &Path, shards: &Path) -> (PathBuf, PathBuf) {
    let cfg = config(tmp, "tiny.toml", shards, &[]);
    let run = tmp.join("run");
    run_ok(&args(&train(&cfg, &run, &["--max-steps", "4"])));
    (cfg, run)
}

fn summary(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).expect("train prints its summary as JSON")
}

#[test]
fn run_state_is_checked_before_it_is_trusted() {
    let tmp = tempfile::tempdir().unwrap();
    let shards = shards(tmp.path());
    let (cfg, run) = four_steps(tmp.path(), &shards);
    let step4 = run.join("checkpoints/step-0000004");

    // A lost `latest` resumes from the newest complete step folder, not from step 0.
    std::fs::remove_file(run.join("latest")).unwrap();
    let o = run_ok(&args(&train(&cfg, &run, &["--max-steps", "2"])));
    assert_eq!(summary(&o)["start_step"], 4);

    // Another job holding the run's lock refuses a second one.
    let lock = std::fs::File::create(run.join(".lock")).unwrap();
    lock.try_lock().unwrap();
    fails_naming(&args(&train(&cfg, &run, &[])), &["another job", ".lock"]);
    drop(lock);

    // A cursor past the dataset is an error, not a panic in the loader thread.
    let state_path = run.join("checkpoints/step-0000006/state.json");
    let good = std::fs::read_to_string(&state_path).unwrap();
    let mut st: serde_json::Value = serde_json::from_str(&good).unwrap();
    st["cursor"]["position"] = 100_000.into();
    std::fs::write(&state_path, st.to_string()).unwrap();
    fails_naming(
        &args(&train(&cfg, &run, &[])),
        &["cursor", "position 100000", "past the 24 images"],
    );
    std::fs::write(&state_path, good).unwrap();

    // The data moved (another path, behind a symlink): the run resumes.
    let moved = tmp.path().join("elsewhere");
    std::fs::rename(&shards, &moved).unwrap();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&moved, &link).unwrap();
    let o = run_ok(&args(&train(
        &cfg,
        &run,
        &["--shards", link.to_str().unwrap(), "--max-steps", "1"],
    )));
    assert_eq!(summary(&o)["start_step"], 6);

    // Other data at the run's path: refused.
    let other = tempfile::tempdir().unwrap();
    let other_shards = synth_shards(
        other.path(),
        7,
        &["--views", "2", "--shard-rows", "10", "--resolution", "64"],
    );
    fails_naming(
        &args(&train(
            &cfg,
            &run,
            &["--shards", other_shards.to_str().unwrap()],
        )),
        &["another dataset", other_shards.to_str().unwrap()],
    );
    assert!(step4.join("state.json").exists());
    assert!(!run.join(".lock").exists());
}

#[test]
fn damaged_shards_are_found_before_the_first_step() {
    let tmp = tempfile::tempdir().unwrap();
    let shards = shards(tmp.path());
    let cfg = config(tmp.path(), "tiny.toml", &shards, &[]);
    let first = shards.join("shard-00000.parquet");
    let bytes = std::fs::read(&first).unwrap();

    // Same size, other bytes: only the hash tells, with --verify.
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;
    std::fs::write(&first, &flipped).unwrap();
    fails_naming(
        &args(&train(&cfg, &tmp.path().join("r1"), &["--verify"])),
        &["shard-00000.parquet", "sha256"],
    );
    // Without --verify the damage is found when its rows are read: the error names the
    // shard file and row, and where the run can resume from.
    let o = fails_naming(
        &args(&train(&cfg, &tmp.path().join("r0"), &[])),
        &["shard-00000.parquet", "The last good state is"],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(" row ") || err.contains("rows ["), "{err}");
    // Truncated, or gone: the size check, always.
    std::fs::write(&first, &bytes[..bytes.len() / 2]).unwrap();
    fails_naming(
        &args(&train(&cfg, &tmp.path().join("r2"), &[])),
        &["shard-00000.parquet", "bytes, the manifest says"],
    );
    // A shard that left the manifest (here: renamed out of it) is not silently dropped.
    std::fs::write(&first, &bytes).unwrap();
    std::fs::rename(&first, shards.join("shard-extra.parquet")).unwrap();
    fails_naming(
        &args(&train(&cfg, &tmp.path().join("r3"), &[])),
        &["shard-extra.parquet", "not listed in the manifest"],
    );
    std::fs::remove_file(shards.join("shard-extra.parquet")).unwrap();
    fails_naming(
        &args(&train(&cfg, &tmp.path().join("r4"), &[])),
        &[
            "shard-00000.parquet",
            "listed in the manifest but cannot be read",
        ],
    );
}

#[test]
fn thread_counts_are_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = maetok_pipeline::synth::write_imagefolder(&tmp.path().join("f"), 1).unwrap();
    let t = std::time::Instant::now();
    fails_naming(
        &[
            "preprocess",
            "--input",
            folder.to_str().unwrap(),
            "--output",
            tmp.path().join("o").to_str().unwrap(),
            "--threads",
            "100000",
            "--no-progress",
        ],
        &["--threads 100000", "at most"],
    );
    assert!(t.elapsed().as_secs() < 30, "took {:?}", t.elapsed());
}

#[test]
fn a_small_jpeg_claiming_a_huge_size_is_refused_before_decoding() {
    // A 9000 × 9000 claim in a few kilobytes: the default limit (40 MP) refuses it from the
    // header, so no decode thread allocates the 0.9 GB it would take.
    let mut bytes = maetok_e2e::jpeg(0, 1);
    let sof = bytes
        .windows(2)
        .position(|w| w[0] == 0xff && (w[1] == 0xc0 || w[1] == 0xc2))
        .expect("a SOF marker");
    // SOF: marker, length (2), precision (1), height (2), width (2).
    bytes[sof + 5..sof + 7].copy_from_slice(&9000u16.to_be_bytes());
    bytes[sof + 7..sof + 9].copy_from_slice(&9000u16.to_be_bytes());
    let opts = maetok_pipeline::image::decode::DecodeOptions::default();
    let e = maetok_pipeline::image::decode::decode_rgb8(&bytes, &opts).unwrap_err();
    assert_eq!(e.reason(), "too_many_pixels", "{e}");
    assert_eq!(opts.max_pixels, 40_000_000);
}

#[test]
fn progress_counts_to_where_this_call_stops() {
    let tmp = tempfile::tempdir().unwrap();
    let shards = shards(tmp.path());
    let cfg = config(
        tmp.path(),
        "tiny.toml",
        &shards,
        &[("log_every = 4", "log_every = 2")],
    );
    let o = maetok_e2e::maetok()
        .env("MAETOK_LOG", "info")
        .args(args(&train(
            &cfg,
            &tmp.path().join("run"),
            &["--max-steps", "2"],
        )))
        .output()
        .unwrap();
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("step 2/8")
            && err.contains("ETA")
            && err.contains("(this call stops at step 2)"),
        "{err}"
    );
    // encode and reconstruct report count, rate and ETA.
    let ck = fixtures().join("maetok/movq_64");
    let o = maetok_e2e::maetok()
        .env("MAETOK_LOG", "info")
        .args([
            "reconstruct",
            "--checkpoint",
            ck.to_str().unwrap(),
            "--input",
            shards.to_str().unwrap(),
            "--output",
            tmp.path().join("rec").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success()
            && err.contains("reconstruct: 24/24 images")
            && err.contains("images/s, ETA"),
        "{err}"
    );
}
