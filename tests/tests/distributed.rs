//! Data-parallel training on the CPU backend (issue 12): N processes launched by hand (the
//! variables exported, as a debugger or another launcher does) and under the real torchrun
//! give the 1-process weights, resume at another world size, and stop together, naming the
//! rank, when one dies or differs.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use maetok_e2e::ranks::{all_ok, free_port, rel_diff, spawn, tensors, wait_all, ENV};
use maetok_e2e::{fixtures, synth_shards};
use tch::Tensor;

fn shards(dir: &Path) -> PathBuf {
    synth_shards(
        dir,
        6,
        &["--views", "2", "--shard-rows", "10", "--resolution", "64"],
    )
}

/// The tiny preset, 30 steps at global batch 8 (1, 2 and 4 ranks divide it), pixel, HOG
/// and GAN losses (the DINO discriminator from step 0, its heads pooled over the ranks),
/// every rank's weights and heads compared after every step.
///
/// LPIPS is off: with the fixture's random VGG and heads it turns a rounding difference
/// into a jump (at steps 11 and 16 of 30, 4 ranks against 1 went from 1e-8 to 2.5e-4 of
/// the largest weight; without it they stay at 5e-9 to the end), as a feature map whose
/// ReLUs are all off at a place would, its unit normalisation dividing by almost nothing.
/// It is no rank effect: one rank under `ATEN_CPU_CAPABILITY=avx2` against `default`, LPIPS
/// on, drifts the same way (from 1.4e-8 to 3.1e-4 by step 30, the jump at steps 9–10).
/// `lpips_with_ranks` below shows LPIPS itself equal on any number of ranks at step 1.
///
/// lr 3e-4 and AdamW eps 1e-4 make the comparison of weights a measure. AdamW moves each
/// weight by about lr whatever the size of its gradient, so at eps 1e-8 the elements whose
/// gradient is at rounding level (zero-initialised biases and modulations have many) take
/// lr-sized steps of either sign, and at lr 1e-3 this tiny model amplifies any rounding
/// difference about a thousandfold within 30 steps. Either way, any change of summation
/// order (1 vs 2 threads too) moved the weights by 1e-3 of their largest value, which hid
/// what the test is for. Measured here (2026-12-01, these settings): 1 vs 2 threads 9.4e-7;
/// stage 1 at 2 ranks 1.3e-6, at 4 ranks 8.0e-7, 2 ranks resumed at 1 and at 4 1.3e-6;
/// stage 2 at 2 ranks 2.3e-5; against the rule's 1e-4.
fn config(dir: &Path, name: &str, shards: &Path, extra: &str) -> PathBuf {
    let text = std::fs::read_to_string(fixtures().join("../../configs/tokenizer-tiny.toml"))
        .unwrap()
        .replace("steps = 300", "steps = 30")
        .replace("lr = 1e-3", "lr = 3e-4")
        .replace("ema_decay = 0.99", "ema_decay = 0.99\neps = 1e-4")
        .replace("warmup_steps = 20", "warmup_steps = 5")
        .replace("log_every = 20", "log_every = 1")
        .replace("checkpoint_every = 100", "checkpoint_every = 15")
        .replace("sample_every = 100", "sample_every = 30")
        .replace(
            "disc_weight = 0.0         # the DINO discriminator needs ViT-S/16 weights; off here",
            &format!(
                "disc_weight = 0.5\ndisc_start = 0\nbackbone = {:?}\nbackbone_heads = 2",
                fixtures().join("step/dino.safetensors")
            ),
        )
        .replace(
            "shards = \"demo-out/shards/imagefolder\"",
            &format!("shards = {:?}", shards.to_str().unwrap()),
        );
    assert!(
        text.contains("steps = 30\n")
            && text.contains("eps = 1e-4")
            && text.contains("disc_start = 0")
    );
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!("{text}\n[dist]\ncheck_every = 1\ntimeout_s = 20\n{extra}"),
    )
    .unwrap();
    p
}

/// `train <stage> --config cfg --run-dir run [extra]`.
fn train_args(stage: &str, cfg: &Path, run: &Path, extra: &[&str]) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec!["train".into(), stage.into(), "--config".into()];
    a.extend([cfg.into(), "--run-dir".into(), run.into()]);
    a.extend(extra.iter().map(OsString::from));
    a
}

/// `maetok train <stage> --config cfg --run-dir run [extra]` on `world` ranks, all
/// succeeding.
fn train(world: usize, stage: &str, cfg: &Path, run: &Path, extra: &[&str]) -> Vec<Output> {
    let a = train_args(stage, cfg, run, extra);
    let outs = wait_all(spawn(world, |_| a.clone(), |_, _| {}));
    all_ok(&outs);
    outs
}

fn weights(run: &Path, step: &str) -> HashMap<String, Tensor> {
    tensors(run, &format!("checkpoints/{step}/model.safetensors"))
}

fn losses(run: &Path) -> Vec<f64> {
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

/// The largest relative difference of two runs' logged losses.
fn loss_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / x.abs())
        .fold(0.0, f64::max)
}

fn state(run: &Path, step: &str) -> serde_json::Value {
    maetok_e2e::json_file(&run.join("checkpoints").join(step).join("state.json"))
}

/// The rule of issue 12: N ranks are "the same" as one when their weights differ by no
/// more than 10× what summation order alone gives (one rank at 1 vs 2 threads), or 1e-4.
fn tolerance(one: &HashMap<String, Tensor>, one_2threads: &HashMap<String, Tensor>) -> f64 {
    let floor = rel_diff(one, one_2threads);
    eprintln!("1 rank at 1 vs 2 threads: {floor:.2e}");
    (10.0 * floor).max(1e-4)
}

#[test]
fn two_and_four_ranks_train_the_weights_of_one_and_resume_at_another_world_size() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let shards = shards(d);
    let cfg = config(d, "s1.toml", &shards, "");
    let last = "step-0000030";

    // Stage 1.
    let one = d.join("s1-w1");
    train(1, "tokenizer", &cfg, &one, &[]);
    let one2 = d.join("s1-w1-2threads");
    let a = train_args("tokenizer", &cfg, &one2, &[]);
    all_ok(&wait_all(spawn(
        1,
        |_| a.clone(),
        |_, c| {
            c.env("OMP_NUM_THREADS", "2").env("MKL_NUM_THREADS", "2");
        },
    )));
    let w1 = weights(&one, last);
    let tol = tolerance(&w1, &weights(&one2, last));
    // One process through the collective layer (buckets, the backend) makes exactly the
    // updates of one without it: the CPU stand-in for the NCCL world-size-1 device check.
    let layered = d.join("s1-w1-cpu-backend");
    train(
        1,
        "tokenizer",
        &config(d, "s1-cpu.toml", &shards, "backend = \"cpu\"\n"),
        &layered,
        &[],
    );
    assert_eq!(
        rel_diff(&w1, &weights(&layered, last)),
        0.0,
        "1 process with and without the collective layer"
    );
    let loss_tol = (10.0 * loss_diff(&losses(&one), &losses(&one2))).max(1e-4);
    for world in [2, 4] {
        let run = d.join(format!("s1-w{world}"));
        train(world, "tokenizer", &cfg, &run, &[]);
        let diff = rel_diff(&w1, &weights(&run, last));
        eprintln!("stage 1, {world} ranks vs 1: {diff:.2e} (tolerance {tol:.2e})");
        assert!(diff <= tol, "stage 1 at {world} ranks: {diff:e} > {tol:e}");
        assert_eq!(state(&run, last)["world"], world);
        // The logged loss is the mean over the ranks: the 1-rank loss, to float sums at
        // step 1 (same weights) and within the same rule after.
        let (a, b) = (losses(&one), losses(&run));
        assert_eq!(a.len(), 30);
        assert!(
            (a[0] - b[0]).abs() <= 1e-5 * a[0],
            "step 1: {} vs {}",
            a[0],
            b[0]
        );
        let ld = loss_diff(&a, &b);
        assert!(
            ld <= loss_tol,
            "losses at {world} ranks: {ld:e} > {loss_tol:e}"
        );
    }

    // Resume at another world size: 2 ranks to step 15, then 1 and 4 ranks to step 30.
    let half = d.join("s1-w2-half");
    train(2, "tokenizer", &cfg, &half, &["--max-steps", "15"]);
    assert_eq!(state(&half, "step-0000015")["world"], 2);
    for world in [1, 4] {
        let run = d.join(format!("s1-w2-then-w{world}"));
        std::fs::create_dir_all(run.join("checkpoints")).unwrap();
        let copy = Command::new("cp")
            .args(["-r"])
            .arg(half.join("checkpoints/step-0000015"))
            .arg(run.join("checkpoints/"))
            .status()
            .unwrap();
        assert!(copy.success());
        for f in ["config.toml", "latest", "metrics.jsonl"] {
            std::fs::copy(half.join(f), run.join(f)).unwrap();
        }
        train(world, "tokenizer", &cfg, &run, &[]);
        let diff = rel_diff(&w1, &weights(&run, last));
        eprintln!("stage 1, 2 ranks then {world}: {diff:.2e} (tolerance {tol:.2e})");
        assert!(
            diff <= tol,
            "2 ranks resumed at {world}: {diff:e} > {tol:e}"
        );
    }

    // Stage 2 from the 1-rank stage 1, at 1 and 2 ranks.
    let cfg2 = config(
        d,
        "s2.toml",
        &shards,
        "[decoder_ft]\nmask_ratio_start = 0.6\n",
    );
    let from = one.to_str().unwrap();
    let s2 = |world: usize| {
        let run = d.join(format!("s2-w{world}"));
        train(world, "decoder", &cfg2, &run, &["--from", from]);
        weights(&run, last)
    };
    let (a, b) = (s2(1), s2(2));
    let diff = rel_diff(&a, &b);
    eprintln!("stage 2, 2 ranks vs 1: {diff:.2e} (tolerance {tol:.2e})");
    assert!(diff <= tol, "stage 2 at 2 ranks: {diff:e} > {tol:e}");
}

/// Waits until `run`'s metrics.jsonl has logged step `step`.
fn wait_for_step(run: &Path, step: u64, children: &mut [Child]) {
    let t0 = Instant::now();
    loop {
        let done = std::fs::read_to_string(run.join("metrics.jsonl"))
            .map(|t| t.lines().count() as u64 >= step)
            .unwrap_or(false);
        if done {
            return;
        }
        for c in children.iter_mut() {
            if let Some(s) = c.try_wait().unwrap() {
                panic!("a rank exited early: {s:?}");
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no step {step} after 2 min"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_killed_rank_stops_every_other_rank_naming_it_and_the_job_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let shards = shards(d);
    let cfg = config(d, "kill.toml", &shards, "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("steps = 30\n", "steps = 100000\n")
        .replace("batch_size = 8", "batch_size = 6")
        .replace("checkpoint_every = 15", "checkpoint_every = 3")
        .replace("timeout_s = 20", "timeout_s = 4");
    std::fs::write(&cfg, text).unwrap();
    let run = d.join("run");
    let a = train_args("tokenizer", &cfg, &run, &[]);
    let mut children = spawn(3, |_| a.clone(), |_, _| {});
    wait_for_step(&run, 4, &mut children);
    // SIGKILL rank 2: no chance to say goodbye.
    unsafe { libc::kill(children[2].id() as i32, libc::SIGKILL) };
    let killed_at = Instant::now();
    let outs = wait_all(children);
    let took = killed_at.elapsed();
    assert_eq!(outs[2].status.signal(), Some(libc::SIGKILL));
    for r in [0, 1] {
        let err = String::from_utf8_lossy(&outs[r].stderr);
        assert_eq!(outs[r].status.code(), Some(1), "rank {r}: {err}");
        assert!(
            err.contains("rank 2 left the job"),
            "rank {r} does not name rank 2: {err}"
        );
    }
    // Within the timeout (4 s; the others wait up to twice that for rank 0's verdict).
    assert!(
        took < Duration::from_secs(12),
        "the job took {took:?} to stop"
    );
    // The last step folder is complete and the job resumes from it, here at 2 ranks.
    let latest = std::fs::read_to_string(run.join("latest")).unwrap();
    let st = state(&run, latest.trim());
    let at = st["step"].as_u64().unwrap();
    assert!(at >= 3 && at.is_multiple_of(3), "{st}");
    train(2, "tokenizer", &cfg, &run, &["--max-steps", "1"]);
    let summary = maetok_e2e::json_file(&run.join("summary.json"));
    assert_eq!(summary["start_step"].as_u64(), Some(at), "{summary}");
}

/// Runs a job whose ranks each get their own arguments, every rank failing with status 1;
/// returns every rank's stderr.
fn job_errors(world: usize, args: impl Fn(usize) -> Vec<OsString>) -> Vec<String> {
    wait_all(spawn(world, args, |_, _| {}))
        .into_iter()
        .map(|o| {
            assert_eq!(o.status.code(), Some(1), "{o:?}");
            String::from_utf8_lossy(&o.stderr).into_owned()
        })
        .collect()
}

#[test]
fn ranks_that_differ_or_cannot_split_the_batch_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let shards = shards(d);
    let same = config(d, "a.toml", &shards, "");
    let other = config(d, "b.toml", &shards, "");
    let t = std::fs::read_to_string(&other)
        .unwrap()
        .replace("lr = 3e-4", "lr = 2e-4");
    std::fs::write(&other, t).unwrap();
    let run = d.join("run");
    let errs = job_errors(2, |rank| {
        train_args(
            "tokenizer",
            if rank == 0 { &same } else { &other },
            &run,
            &[],
        )
    });
    for e in &errs {
        assert!(
            e.contains("rank 1 differs from rank 0") && e.contains("configuration"),
            "{e}"
        );
    }
    assert!(
        !run.join("checkpoints").exists(),
        "a refused job wrote its run folder"
    );
    // 3 ranks cannot split a global batch of 8.
    let errs = job_errors(3, |_| train_args("tokenizer", &same, &run, &[]));
    for e in &errs {
        assert!(
            e.contains("data.batch_size = 8") && e.contains("multiple of 3"),
            "{e}"
        );
    }
}

#[test]
fn torchrun_launches_the_plain_command_line() {
    let torchrun = std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("torchrun"))
                .find(|p| p.exists())
        })
        .expect("torchrun on PATH (the project's venv: `source scripts/env.sh`)");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let shards = shards(d);
    let cfg = config(d, "t.toml", &shards, "");
    let run = d.join("run");
    let o = Command::new(torchrun)
        .args(["--no-python", "--nproc-per-node", "2", "--master-port"])
        .arg(free_port().to_string())
        .arg(maetok_e2e::maetok_bin())
        .args(["train", "tokenizer", "--config"])
        .arg(&cfg)
        .arg("--run-dir")
        .arg(&run)
        .args(["--log-level", "warn", "--max-steps", "2"])
        .envs(ENV)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(state(&run, "step-0000002")["world"], 2);
}

/// With every loss on (pixel, LPIPS with the fixture's VGG and heads and their dropout keyed
/// per sample, HOG, the GAN), 1, 2 and 4 ranks log the same step-1 terms and make the same
/// first update.
#[test]
fn lpips_with_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let shards = shards(d);
    let fx = fixtures();
    let cfg = config(d, "l.toml", &shards, "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "perceptual_weight = 0.0   # LPIPS needs VGG16 weights; the tiny preset trains without it",
        &format!(
            "perceptual_weight = 1.0\nperceptual_warmup = 0\nlpips_vgg = {:?}\nlpips_heads = {:?}",
            fx.join("lpips/vgg.safetensors"),
            fx.join("lpips/heads.safetensors")
        ),
    );
    assert!(text.contains("lpips_heads"));
    std::fs::write(&cfg, text).unwrap();
    let runs: Vec<PathBuf> = [1, 2, 4]
        .iter()
        .map(|&w| {
            let run = d.join(format!("w{w}"));
            train(w, "tokenizer", &cfg, &run, &["--max-steps", "1"]);
            run
        })
        .collect();
    let one = weights(&runs[0], "step-0000001");
    let terms = |run: &Path| -> serde_json::Value {
        let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
        serde_json::from_str(text.lines().next().unwrap()).unwrap()
    };
    let keys = [
        "loss",
        "rec",
        "lpips",
        "aux_hog",
        "gan_g",
        "adaptive_weight",
        "d_loss",
        "d_cr",
        "logits_real",
        "logits_fake",
    ];
    let t1 = terms(&runs[0]);
    for run in &runs[1..] {
        let t = terms(run);
        for k in keys {
            let (a, b) = (t1[k].as_f64().unwrap(), t[k].as_f64().unwrap());
            assert!(
                (a - b).abs() <= 1e-5 * a.abs().max(1e-3),
                "{}: {k} {b} vs {a}",
                run.display()
            );
        }
        let diff = rel_diff(&one, &weights(run, "step-0000001"));
        assert!(diff <= 1e-6, "{}: {diff:e}", run.display());
    }
}
