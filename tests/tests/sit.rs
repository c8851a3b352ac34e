//! SiT end to end (issue 13): `maetok encode` writes latent shards from a tiny tokenizer,
//! `maetok train sit` trains on them, and `maetok sample` draws from the result.
//!
//! * a run resumed after SIGKILL (mid-step, mid-checkpoint) ends bit-identical to one that
//!   never stopped, with the same logged losses; retention keeps the newest step folders
//!   and the milestones;
//! * 2 ranks train the weights of 1 (the per-sample draws follow the global index);
//! * samples do not depend on the chunk size or a kill in between, and land in the ADM
//!   evaluator's `.npz` layout that numpy reads.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

use maetok_e2e::ranks::{all_ok, os_args, rel_diff, spawn, tensors, wait_all, ENV};
use maetok_e2e::{fingerprint_tree, fixtures, json_file, maetok, run_ok, synth_shards};

/// The movq_64 fixture tokenizer (8 latent tokens × 4 at 64 px) with its heads in
/// config.json, and the latents of the synthetic ImageFolder's shards encoded by it.
fn latents(dir: &Path) -> (PathBuf, PathBuf) {
    let src = fixtures().join("maetok/movq_64");
    let tok = dir.join("tok");
    std::fs::create_dir_all(&tok).unwrap();
    std::fs::copy(src.join("model.safetensors"), tok.join("model.safetensors")).unwrap();
    let arch = json_file(&src.join("arch.json"));
    let mut cfg = json_file(&src.join("config.json"));
    cfg["enc_num_heads"] = arch["encoder"]["num_heads"].clone();
    cfg["dec_num_heads"] = arch["decoder"]["num_heads"].clone();
    std::fs::write(tok.join("config.json"), cfg.to_string()).unwrap();
    let shards = synth_shards(
        dir,
        6,
        &["--resolution", "64", "--no-hog", "--shard-rows", "10"],
    );
    let out = dir.join("latents");
    let p = |p: &Path| p.to_str().unwrap().to_string();
    run_ok(&[
        "encode",
        "--checkpoint",
        &p(&tok),
        "--input",
        &p(&shards),
        "--output",
        &p(&out),
        "--shard-rows",
        "7",
        "--write-stats",
    ]);
    (tok, out)
}

/// SiT-mini on the latents, 12 steps of global batch 4, step folders every 4 steps, the
/// newest kept plus every 8th; a sample grid at step 6 (EMA weights, decoded).
fn config(dir: &Path, name: &str, extra: &str) -> PathBuf {
    let text = format!(
        "[model]\npreset = \"SiT-mini/1\"\nnum_classes = 1000\n\
         [data]\nbatch_size = 4\nnormalize = \"tokenizer\"\n\
         [optim]\nlr = 3e-4\nema_decay = 0.9\nwarmup_steps = 2\n\
         [train]\nsteps = 12\ndevice = \"cpu\"\nlog_every = 1\ncheckpoint_every = 4\n\
         keep_checkpoints = 1\nmilestone_every = 8\nsample_every = 6\ngrid_labels = [0, 151]\n\
         grid_per_class = 2\ngrid_steps = 3\n[dist]\ncheck_every = 1\ntimeout_s = 20\n{extra}"
    );
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn train_args(cfg: &Path, run: &Path, latents: &Path, tok: &Path) -> Vec<String> {
    let p = |p: &Path| p.to_str().unwrap().to_string();
    vec![
        "train".into(),
        "sit".into(),
        "--config".into(),
        p(cfg),
        "--run-dir".into(),
        p(run),
        "--latents".into(),
        p(latents),
        "--tokenizer".into(),
        p(tok),
    ]
}

/// Runs the command with `ENV`, asserting that it succeeds; returns its output.
fn ok(c: &mut std::process::Command) -> std::process::Output {
    let o = c.envs(ENV).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

fn losses(run: &Path) -> Vec<f64> {
    losses_of(run)
}

fn losses_of(run: &Path) -> Vec<f64> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"]
                .as_f64()
                .unwrap()
        })
        .collect()
}

#[test]
fn sit_trains_resumes_exactly_and_trains_alike_on_two_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let (tok, lat) = latents(dir.path());
    let cfg = config(dir.path(), "sit.toml", "");
    let reference = dir.path().join("reference");
    let a = train_args(&cfg, &reference, &lat, &tok);
    ok(maetok().args(&a));
    let mut kept: Vec<String> = std::fs::read_dir(reference.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    kept.sort();
    assert_eq!(kept, ["step-0000008", "step-0000012"], "retention");
    assert!(reference.join("samples/step-0000006.png").exists());
    assert!(reference.join("loss.png").exists());
    let expected = fingerprint_tree(&reference.join("checkpoints/step-0000012"));
    for f in [
        "model.safetensors",
        "config.json",
        "ema/model.safetensors",
        "ema/config.json",
        "optimizer.safetensors",
        "state.json",
    ] {
        assert!(
            expected.contains_key(f),
            "step folder lacks {f}: {expected:?}"
        );
    }
    let reference_losses = losses(&reference);
    assert_eq!(reference_losses.len(), 12);

    for (i, kill) in ["train_backward:3", "train_checkpoint_filling:2"]
        .iter()
        .enumerate()
    {
        let run = dir.path().join(format!("killed-{i}"));
        let a = train_args(&cfg, &run, &lat, &tok);
        let status = maetok()
            .args(&a)
            .envs(ENV)
            .env("MAETOK_KILL_AT", kill)
            .status()
            .unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{kill}");
        let o = maetok().args(&a).envs(ENV).output().unwrap();
        assert!(
            o.status.success(),
            "{kill}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(
            fingerprint_tree(&run.join("checkpoints/step-0000012")),
            expected,
            "after a kill at {kill}"
        );
        assert_eq!(losses(&run), reference_losses, "after a kill at {kill}");
    }

    // Two ranks over the CPU backend: the same draws per global sample, gradients averaged.
    let two = dir.path().join("two");
    let a = train_args(&cfg, &two, &lat, &tok);
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    let outs = wait_all(spawn(2, |_| os_args(&refs), |_, _| {}));
    all_ok(&outs);
    for f in ["model.safetensors", "ema/model.safetensors"] {
        let file = format!("checkpoints/step-0000012/{f}");
        let d = rel_diff(&tensors(&reference, &file), &tensors(&two, &file));
        println!("2 ranks vs 1, {f}: {d:.2e}");
        assert!(d <= 1e-4, "{f}: {d:.3e}");
    }
}

/// LightningDiT (spec §7.5) through the same loop: `LightningDiT-mini/1` with the cosine
/// term resumes bit-identically after a SIGKILL mid-step, its step folder says what it is,
/// the first step's loss is the MSE plus exactly 1 (a fresh model outputs 0, whose cosine
/// with anything is 0), and `maetok sample` draws from its step folder.
#[test]
fn lightningdit_trains_resumes_exactly_and_samples() {
    let dir = tempfile::tempdir().unwrap();
    let (tok, lat) = latents(dir.path());
    let lightning = |name: &str, weight: f64| {
        let p = config(
            dir.path(),
            name,
            &format!("[transport]\ncosine_weight = {weight}\n"),
        );
        let text = std::fs::read_to_string(&p)
            .unwrap()
            .replace("SiT-mini/1", "LightningDiT-mini/1")
            .replace("steps = 12\n", "steps = 8\n");
        std::fs::write(&p, text).unwrap();
        p
    };
    let cfg = lightning("ld.toml", 1.0);
    let reference = dir.path().join("reference");
    ok(maetok().args(train_args(&cfg, &reference, &lat, &tok)));
    let step = reference.join("checkpoints/step-0000008");
    let c = json_file(&step.join("ema/config.json"));
    assert_eq!(c["architecture"], "LightningDiT");
    assert_eq!(
        (c["use_rope"].as_bool(), c["use_swiglu"].as_bool()),
        (Some(true), Some(true))
    );
    let expected = fingerprint_tree(&step);
    let reference_losses = losses(&reference);

    let run = dir.path().join("killed");
    let a = train_args(&cfg, &run, &lat, &tok);
    let status = maetok()
        .args(&a)
        .envs(ENV)
        .env("MAETOK_KILL_AT", "train_backward:3")
        .status()
        .unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    ok(maetok().args(&a));
    assert_eq!(
        fingerprint_tree(&run.join("checkpoints/step-0000008")),
        expected
    );
    assert_eq!(losses(&run), reference_losses);

    let plain = dir.path().join("plain");
    ok(maetok().args(train_args(&lightning("mse.toml", 0.0), &plain, &lat, &tok)));
    let d = reference_losses[0] - losses(&plain)[0];
    assert!((d - 1.0).abs() < 1e-5, "first-step cosine term {d}");

    let out = dir.path().join("samples");
    let mut s = sample_args(&reference, &out, &tok, "4");
    let i = s.iter().position(|a| a == "euler-maruyama").unwrap();
    s[i] = "euler".into();
    ok(maetok().args(&s));
    let t = tensors(&out, "latents.safetensors");
    assert_eq!(t["latents"].size(), [10, 8, 4]);
    assert!(out.join("samples.npz").exists() && out.join("grid.png").exists());
}

fn sample_args(model: &Path, out: &Path, tok: &Path, batch: &str) -> Vec<String> {
    let p = |p: &Path| p.to_str().unwrap().to_string();
    [
        "sample",
        "--model",
        &p(model),
        "--output",
        &p(out),
        "--tokenizer",
        &p(tok),
        "--num",
        "10",
        "--labels",
        "0,151,1",
        "--sampler",
        "euler-maruyama",
        "--steps",
        "4",
        "--cfg-scale",
        "2",
        "--cfg-interval",
        "0,0.75",
        "--seed",
        "3",
        "--batch",
        batch,
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn samples_do_not_depend_on_the_chunking_survive_a_kill_and_are_adm_npz() {
    let dir = tempfile::tempdir().unwrap();
    let (tok, lat) = latents(dir.path());
    let cfg = config(dir.path(), "sit.toml", "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("steps = 12", "steps = 4");
    std::fs::write(&cfg, text).unwrap();
    let run = dir.path().join("run");
    ok(maetok().args(train_args(&cfg, &run, &lat, &tok)));
    let model = run.join("checkpoints/step-0000004");

    let a = dir.path().join("a");
    ok(maetok().args(sample_args(&model, &a, &tok, "4")));
    let la = tensors(&a, "latents.safetensors");
    assert_eq!(la["latents"].size(), [10, 8, 4]);
    let labels: Vec<i64> = Vec::try_from(&la["labels"]).unwrap();
    assert_eq!(labels, [0, 151, 1, 0, 151, 1, 0, 151, 1, 0]);
    assert!(a.join("grid.png").exists() && !a.join(".chunks").exists());
    let (shape, pixels) = maetok_eval::npz::read_image_batch(&a.join("samples.npz")).unwrap();
    assert_eq!(shape, [10, 64, 64, 3]);
    assert!(
        pixels.iter().any(|&p| p != pixels[0]),
        "decoded images are not flat"
    );
    {
        let py = std::env::var("MAETOK_PYTHON_BIN")
            .expect("MAETOK_PYTHON_BIN is not set: run the tests through `./run test`");
        let code = "import sys, numpy as np; a = np.load(sys.argv[1])['arr_0']; \
                    print(a.shape, a.dtype, int(a.astype('int64').sum()))";
        let o = std::process::Command::new(py)
            .args(["-c", code])
            .arg(a.join("samples.npz"))
            .output()
            .unwrap();
        let printed = String::from_utf8_lossy(&o.stdout).trim().to_string();
        let sum: u64 = pixels.iter().map(|&p| p as u64).sum();
        assert_eq!(
            printed,
            format!("(10, 64, 64, 3) uint8 {sum}"),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    // Other chunks: the same samples (each one's noise is keyed by its index), up to the
    // batch size's effect on the kernels' sums.
    let b = dir.path().join("b");
    ok(maetok().args(sample_args(&model, &b, &tok, "3")));
    let lb = tensors(&b, "latents.safetensors");
    let d = rel_diff(
        &[("x".to_string(), la["latents"].shallow_clone())].into(),
        &[("x".to_string(), lb["latents"].shallow_clone())].into(),
    );
    println!("batch 3 vs 4: {d:.2e}");
    assert!(d <= 1e-5, "{d:.3e}");

    // Killed after its second chunk and started again: the same files.
    let c = dir.path().join("c");
    let args = sample_args(&model, &c, &tok, "4");
    let status = maetok()
        .args(&args)
        .envs(ENV)
        .env("MAETOK_KILL_AT", "sample_chunk_written:2")
        .status()
        .unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert!(
        !c.join("latents.safetensors").exists(),
        "no complete-looking file after a kill"
    );
    let o = ok(maetok().args(&args).env("MAETOK_LOG", "info"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("2 of this process's 3 chunks are done"),
        "{err}"
    );
    for f in ["latents.safetensors", "samples.npz"] {
        let same = std::fs::read(a.join(f)).unwrap() == std::fs::read(c.join(f)).unwrap();
        assert!(same, "{f} differs after a kill and a resume");
    }
    // Two ranks share the chunks; rank 0 assembles the same files.
    let d = dir.path().join("d");
    let two = sample_args(&model, &d, &tok, "4");
    let refs: Vec<&str> = two.iter().map(String::as_str).collect();
    all_ok(&wait_all(spawn(2, |_| os_args(&refs), |_, _| {})));
    for f in ["latents.safetensors", "samples.npz"] {
        let same = std::fs::read(a.join(f)).unwrap() == std::fs::read(d.join(f)).unwrap();
        assert!(same, "{f} differs on 2 ranks");
    }
    // A finished output is not redone; another request is refused.
    let o = maetok()
        .args(&args)
        .envs(ENV)
        .env("MAETOK_LOG", "info")
        .output()
        .unwrap();
    assert!(o.status.success() && String::from_utf8_lossy(&o.stderr).contains("complete already"));
    let mut other = args.clone();
    let last = other.len() - 1;
    other[last] = "5".into();
    let o = maetok().args(&other).envs(ENV).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("another request"));
}

/// `scripts/convert_sit.py` turns an official `train_sit.py` checkpoint (`model`, `ema`,
/// `opt`, `args`, `steps`) into a folder that loads here with the EMA weights.
#[test]
fn an_official_training_checkpoint_converts_to_a_sit_folder() {
    let python = std::env::var("MAETOK_PYTHON_BIN")
        .expect("MAETOK_PYTHON_BIN is not set: run the tests through `./run test`");
    let dir = tempfile::tempdir().unwrap();
    let case = fixtures().join("sit/tiny_a");
    let pt = dir.path().join("0000100.pt");
    // A training checkpoint as train_sit.py writes it: the fixture's weights as the EMA,
    // other raw weights, an argparse Namespace.
    let make = format!(
        "import argparse, torch, json, struct\n\
         def read(p):\n\
         \x20   b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8+n]); out = {{}}\n\
         \x20   for k, v in h.items():\n\
         \x20       if k == '__metadata__': continue\n\
         \x20       s, e = v['data_offsets']; out[k] = torch.frombuffer(bytearray(b[8+n+s:8+n+e]), dtype=torch.float32).reshape(v['shape'])\n\
         \x20   return out\n\
         ema = read({model:?}); raw = {{k: v + 1 for k, v in ema.items()}}\n\
         args = argparse.Namespace(model='SiT-B/1', num_classes=10, cfg_prob=0.1, path_type='linear', qk_norm=False, fused_attn=False, flash_attn=True)\n\
         torch.save({{'model': {{'module.' + k: v for k, v in raw.items()}}, 'ema': ema, 'opt': {{}}, 'args': args, 'steps': 100}}, {pt:?})\n",
        model = case.join("model.safetensors"),
        pt = pt,
    );
    let o = std::process::Command::new(&python)
        .args(["-c", &make])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = dir.path().join("converted");
    let script = fixtures().join("../../scripts/convert_sit.py");
    let o = std::process::Command::new(&python)
        .arg(&script)
        .arg(&pt)
        .arg(&out)
        .args(["--num-heads", "2"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ours = maetok_models::sit::Sit::load(&out).unwrap();
    let theirs = maetok_models::sit::Sit::load(&case).unwrap();
    let mut want = theirs.config.clone();
    want.fused_attn = Some(false);
    want.extra
        .insert("flash_attn".into(), serde_json::json!(true));
    assert_eq!(ours.config, want);
    for (k, t) in theirs.vars.named() {
        assert!(
            t.equal(ours.vars.get(&k).unwrap()),
            "{k}: not the EMA weights"
        );
    }
    // --raw takes the raw weights (here the EMA + 1), `module.` prefixes stripped.
    let o = std::process::Command::new(&python)
        .arg(&script)
        .arg(&pt)
        .arg(dir.path().join("raw"))
        .args(["--num-heads", "2", "--raw"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let raw = maetok_models::sit::Sit::load(&dir.path().join("raw")).unwrap();
    let d =
        raw.vars.get("x_embedder.weight").unwrap() - theirs.vars.get("x_embedder.weight").unwrap();
    assert_eq!(f64::try_from(d.mean(tch::Kind::Float)).unwrap(), 1.0);
}

/// `maetok encode` into a folder, killed mid-shard or between a shard's rename and the
/// manifest update, and run again with the same arguments, ends with the files of an
/// uninterrupted run (shards, manifest, statistics); another checkpoint is refused.
#[test]
fn an_interrupted_encode_resumes_to_the_same_folder() {
    let dir = tempfile::tempdir().unwrap();
    let (tok, _) = latents(dir.path());
    let shards = dir.path().join("shards");
    let p = |p: &Path| p.to_str().unwrap().to_string();
    let args = |out: &Path| {
        [
            "encode",
            "--checkpoint",
            &p(&tok),
            "--input",
            &p(&shards),
            "--output",
            &p(out),
            "--shard-rows",
            "8",
            "--batch-size",
            "4",
        ]
        .map(String::from)
        .to_vec()
    };
    let reference = dir.path().join("reference");
    run_ok(
        &args(&reference)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let want = fingerprint_tree(&reference);
    assert!(want.len() >= 4, "{want:?}");
    for kill in ["encode_pushed:13", "latent_shard_renamed:2"] {
        let out = dir.path().join(kill.replace(':', "-"));
        let status = maetok()
            .args(args(&out))
            .env("MAETOK_KILL_AT", kill)
            .status()
            .unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{kill}");
        let o = maetok()
            .args(args(&out))
            .env("MAETOK_LOG", "info")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{kill}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("continuing an unfinished encode"),
            "{kill}"
        );
        assert_eq!(fingerprint_tree(&out), want, "after a kill at {kill}");
    }
    // A finished folder, or an unfinished one of another checkpoint, is refused.
    let o = maetok().args(args(&reference)).output().unwrap();
    assert!(
        !o.status.success()
            && String::from_utf8_lossy(&o.stderr).contains("complete latent folder")
    );
    let out = dir.path().join("other");
    let status = maetok()
        .args(args(&out))
        .env("MAETOK_KILL_AT", "encode_pushed:13")
        .status()
        .unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    let other_tok = dir.path().join("tok2");
    std::fs::create_dir_all(&other_tok).unwrap();
    let w = maetok_e2e::ranks::tensors(&tok, "model.safetensors");
    let doubled: Vec<(String, tch::Tensor)> = w.into_iter().map(|(k, t)| (k, t * 2.0)).collect();
    tch::Tensor::write_safetensors(&doubled, other_tok.join("model.safetensors")).unwrap();
    std::fs::copy(tok.join("config.json"), other_tok.join("config.json")).unwrap();
    let mut a = args(&out);
    a[2] = p(&other_tok);
    let o = maetok().args(&a).output().unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("another checkpoint"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Training under bf16 autocast (CPU autocast here; on CUDA it is the default) follows fp32:
/// the first steps' losses agree to a few per cent.
#[test]
fn bf16_autocast_trains_close_to_fp32() {
    let dir = tempfile::tempdir().unwrap();
    let (tok, lat) = latents(dir.path());
    let mut losses = Vec::new();
    for p in ["fp32", "bf16"] {
        let cfg = config(dir.path(), &format!("{p}.toml"), "");
        let text = std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("steps = 12", "steps = 6")
            .replace(
                "device = \"cpu\"",
                &format!("device = \"cpu\"\nprecision = \"{p}\""),
            );
        std::fs::write(&cfg, text).unwrap();
        let run = dir.path().join(p);
        let o = maetok()
            .args(train_args(&cfg, &run, &lat, &tok))
            .envs(ENV)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{p}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        losses.push(losses_of(&run));
    }
    let worst = losses[0]
        .iter()
        .zip(&losses[1])
        .map(|(a, b)| (a - b).abs() / a.abs())
        .fold(0.0, f64::max);
    println!("bf16 vs fp32, first 6 losses: {worst:.2e}");
    assert!(losses[0] != losses[1], "bf16 ran in fp32");
    assert!(worst < 0.03, "{worst:.3e}: {losses:?}");
}
