//! `maetok train tokenizer|decoder` end to end on a tiny model: run folders, resume after
//! SIGKILL at several points to bit-identical weights, a non-finite loss stopping the run
//! with the last step folder intact, and stage 2 from stage 1.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

use maetok_e2e::{fixtures, maetok, preprocess, run_ok, synth_shards};
use maetok_pipeline::synth;

/// A 64-px shard folder (2 views, HOG) of the synthetic ImageFolder.
fn shards(dir: &Path) -> PathBuf {
    synth_shards(
        dir,
        6,
        &["--views", "2", "--shard-rows", "10", "--resolution", "64"],
    )
}

/// The tiny preset with a short schedule, written next to the run.
fn config(dir: &Path, name: &str, shards: &Path, extra: &str) -> PathBuf {
    let base =
        std::fs::read_to_string(fixtures().join("../../configs/tokenizer-tiny.toml")).unwrap();
    let text = base
        .replace("batch_size = 8", "batch_size = 4")
        .replace("steps = 300", "steps = 12")
        .replace("warmup_steps = 20", "warmup_steps = 3")
        .replace("log_every = 20", "log_every = 1")
        .replace("checkpoint_every = 100", "checkpoint_every = 4")
        .replace("sample_every = 100", "sample_every = 6");
    let text = format!("{text}\n{extra}");
    let text = text.replace(
        "shards = \"demo-out/shards/imagefolder\"",
        &format!("shards = {:?}", shards.to_str().unwrap()),
    );
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// sha256 of every file of the step folder `step` of `run`.
fn step_files(run: &Path, step: &str) -> BTreeMap<String, String> {
    maetok_e2e::fingerprint_tree(&run.join("checkpoints").join(step))
}

/// Per-step losses from metrics.jsonl (timings differ between runs, losses must not).
fn losses(run: &Path) -> Vec<(u64, f64, f64)> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["step"].as_u64().unwrap(),
                v["loss"].as_f64().unwrap(),
                v["aux_hog"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn train(cfg: &Path, run: &Path) -> std::process::Command {
    let mut c = maetok();
    c.args(["train", "tokenizer", "--config"])
        .arg(cfg)
        .arg("--run")
        .arg(run);
    c
}

#[test]
fn killed_runs_resume_to_identical_weights() {
    let dir = tempfile::tempdir().unwrap();
    let shards = shards(dir.path());
    let cfg = config(dir.path(), "tiny.toml", &shards, "");
    let reference = dir.path().join("reference");
    let o = train(&cfg, &reference).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let expected = step_files(&reference, "step-0000012");
    for f in [
        "model.safetensors",
        "config.json",
        "aux.safetensors",
        "ema/model.safetensors",
        "ema/aux.safetensors",
        "optimizer.safetensors",
        "state.json",
    ] {
        assert!(
            expected.contains_key(f),
            "step folder lacks {f}: {expected:?}"
        );
    }
    assert!(reference.join("samples/step-0000006.png").exists());
    assert!(reference.join("loss.png").exists());
    let reference_losses = losses(&reference);
    assert_eq!(reference_losses.len(), 12);

    // Mid-step before any checkpoint, mid-step later, between checkpoints, while a step
    // folder is half written, right after one is published.
    for (i, kill) in [
        "train_backward:2",
        "train_backward:7",
        "train_updated:10",
        "train_checkpoint_filling:2",
        "train_checkpoint_written:1",
    ]
    .iter()
    .enumerate()
    {
        let run = dir.path().join(format!("killed-{i}"));
        let status = train(&cfg, &run)
            .env("MAETOK_KILL_AT", kill)
            .status()
            .unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{kill}");
        let o = train(&cfg, &run).output().unwrap();
        assert!(
            o.status.success(),
            "{kill}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(
            step_files(&run, "step-0000012"),
            expected,
            "after a kill at {kill}: the final step folder differs"
        );
        assert_eq!(losses(&run), reference_losses, "after a kill at {kill}");
        let leftovers: Vec<_> = std::fs::read_dir(run.join("checkpoints"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{kill}: {leftovers:?}");
    }

    // A step folder is a checkpoint for `reconstruct`.
    let out = dir.path().join("recon");
    run_ok(&[
        "reconstruct",
        "--checkpoint",
        reference
            .join("checkpoints/step-0000012/ema")
            .to_str()
            .unwrap(),
        "--input",
        shards.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(out.join("grid.png").exists());

    // Stage 2 from stage 1: encoder and quant_conv untouched, decoder changed.
    let dec_cfg = config(
        dir.path(),
        "dec.toml",
        &shards,
        "[decoder_ft]\nmask_ratio_start = 0.6\n",
    );
    let dec = dir.path().join("decoder");
    let o = maetok()
        .args(["train", "decoder", "--config"])
        .arg(&dec_cfg)
        .arg("--run")
        .arg(&dec)
        .arg("--from")
        .arg(&reference)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let read = |p: PathBuf| {
        tch::Tensor::read_safetensors(p)
            .unwrap()
            .into_iter()
            .collect::<BTreeMap<_, _>>()
    };
    let s1 = read(reference.join("checkpoints/step-0000012/model.safetensors"));
    let s2 = read(dec.join("checkpoints/step-0000012/model.safetensors"));
    assert_eq!(s1.len(), s2.len());
    for (k, a) in &s1 {
        let same = a.equal(&s2[k]);
        let encoder_side = k.starts_with("encoder.") || k.starts_with("quant_conv.");
        if encoder_side {
            assert!(same, "stage 2 changed {k}");
        } else if k.starts_with("decoder.model.blocks.0.attn") || k.starts_with("decoder.to_pixel")
        {
            assert!(!same, "stage 2 did not train {k}");
        }
    }
    assert!(!dec
        .join("checkpoints/step-0000012/aux.safetensors")
        .exists());
    let v: Vec<f64> = std::fs::read_to_string(dec.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["mask_ratio"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert!(
        (v[0] - 0.6).abs() < 1e-12 && v[11] < 0.06 && v.windows(2).all(|w| w[1] <= w[0]),
        "{v:?}"
    );
}

#[test]
fn a_non_finite_loss_stops_the_run_and_keeps_the_last_step_folder() {
    let dir = tempfile::tempdir().unwrap();
    let shards = shards(dir.path());
    // An absurd learning rate: the first update sends the weights to ~1e30, the next
    // forward overflows.
    let cfg = config(dir.path(), "nan.toml", &shards, "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("lr = 1e-3", "lr = 1e30")
        .replace("warmup_steps = 3", "warmup_steps = 0")
        .replace("checkpoint_every = 4", "checkpoint_every = 1");
    std::fs::write(&cfg, text).unwrap();
    let run = dir.path().join("run");
    let o = train(&cfg, &run).output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("stopping before the update") && err.contains("step-0000001"),
        "{err}"
    );
    let latest = std::fs::read_to_string(run.join("latest")).unwrap();
    assert_eq!(latest.trim(), "step-0000001");
    // The kept step folder is complete and loads.
    let out = dir.path().join("recon");
    let o = maetok()
        .args(["reconstruct", "--checkpoint"])
        .arg(run.join("checkpoints/step-0000001"))
        .args(["--input", shards.to_str().unwrap(), "--output"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Shards with captions train the caption decoder (spec §4.5) next to the HOG decoder.
#[test]
fn captions_train_the_caption_decoder() {
    let dir = tempfile::tempdir().unwrap();
    let pattern = synth::write_webdataset(&dir.path().join("wds"), 1, 12).unwrap();
    let shards = dir.path().join("shards");
    let bpe = fixtures().join("bpe/bpe_simple_vocab_16e6.txt.gz");
    preprocess(
        &pattern,
        &shards,
        &["--resolution", "64", "--caption-bpe", bpe.to_str().unwrap()],
    );
    let cfg = config(
        dir.path(),
        "text.toml",
        &shards,
        "[[aux]]\nname = \"text\"\ntarget = \"text_ids\"\nloss = \"caption\"\n",
    );
    let run = dir.path().join("run");
    let o = train(&cfg, &run)
        .args(["--max-steps", "4"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text: Vec<f64> = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["aux_text"]
                .as_f64()
                .unwrap()
        })
        .collect();
    // Cross-entropy against bags of a few words out of 49,408: about ln(49408) ≈ 10.8 at init.
    assert!(
        text.len() == 4 && text.iter().all(|v| (5.0..15.0).contains(v)),
        "{text:?}"
    );
    let aux: BTreeMap<String, tch::Tensor> =
        tch::Tensor::read_safetensors(run.join("checkpoints/step-0000004/aux.safetensors"))
            .unwrap()
            .into_iter()
            .collect();
    assert_eq!(aux["to_pixel_text.weight"].size()[0], 49_408);
    assert!(aux.contains_key("decoder_text.model.cls_token"));
}

/// `train.precision = "bf16"` runs the forward pass and the losses under libtorch's autocast
/// (here CPU autocast; on CUDA it is what `auto` picks): the losses follow the fp32 run to
/// bf16's precision without being equal to it, and the saved weights stay fp32.
#[test]
fn bf16_autocast_trains_close_to_fp32() {
    let dir = tempfile::tempdir().unwrap();
    let shards = shards(dir.path());
    let mut runs = Vec::new();
    for precision in ["fp32", "bf16"] {
        let cfg = config(dir.path(), &format!("{precision}.toml"), &shards, "");
        let text = std::fs::read_to_string(&cfg).unwrap().replace(
            "[train]\n",
            &format!("[train]\nprecision = \"{precision}\"\n"),
        );
        std::fs::write(&cfg, text).unwrap();
        let run = dir.path().join(precision);
        let o = train(&cfg, &run)
            .args(["--max-steps", "4"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        runs.push(run);
    }
    let (a, b) = (losses(&runs[0]), losses(&runs[1]));
    assert_eq!(a.len(), 4);
    for ((s, la, ha), (_, lb, hb)) in a.iter().zip(&b) {
        assert!(lb.is_finite() && hb.is_finite());
        let rel = (la - lb).abs() / la.abs();
        assert!(rel < 0.01, "step {s}: loss fp32 {la} vs bf16 {lb}");
        let rel = (ha - hb).abs() / ha.abs();
        assert!(rel < 0.01, "step {s}: HOG loss fp32 {ha} vs bf16 {hb}");
        eprintln!("step {s}: loss fp32 {la:.6} bf16 {lb:.6}, HOG fp32 {ha:.6} bf16 {hb:.6}");
    }
    assert_ne!(a[0].1, b[0].1, "bf16 autocast changed nothing: is it on?");
    let w =
        tch::Tensor::read_safetensors(runs[1].join("checkpoints/step-0000004/model.safetensors"))
            .unwrap();
    assert!(w.iter().all(|(_, t)| t.kind() == tch::Kind::Float));
}
