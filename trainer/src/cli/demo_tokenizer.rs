//! The demo's tokenizer part: a synthetic ImageFolder of its own (`per_class` images per
//! class, so that a few thousand steps see each image only a few times) preprocessed at
//! 128 px, the tiny tokenizer trained on it (stage 1, mask modeling with the HOG decoder),
//! its decoder fine-tuned (stage 2), and both scored against the per-image mean-colour
//! baseline on held-out images (later samples of the same generator) and on the first
//! training images.

use std::path::Path;

use anyhow::Context;
use maetok_eval::reconstruction::{mean_colour, psnr, ssim};
use maetok_models::maetok::{images_to_input, AeModel};
use maetok_pipeline::preprocess::{self, PreprocessConfig, RunOptions};
use maetok_pipeline::synth;
use maetok_trainer::train::config::TrainConfig;
use maetok_trainer::train::tokenizer::{resolve_from, train, Stage, TrainOptions};
use maetok_trainer::viz::tensor_to_rgb8;

const RES: usize = 128;
const HELD_OUT: usize = 6;
/// Training images scored (view 0 of the first shard rows).
const SCORED: usize = 96;

struct Scores {
    psnr: f64,
    ssim: f64,
    recons: Vec<Vec<u8>>,
}

fn score(dir: &Path, images: &[maetok_pipeline::image::Rgb8]) -> anyhow::Result<Scores> {
    let model = AeModel::load(dir).with_context(|| format!("loading {}", dir.display()))?;
    let refs: Vec<&maetok_pipeline::image::Rgb8> = images.iter().collect();
    let x = images_to_input(&maetok_pipeline::preprocess::teach::batch_tensor(&refs));
    let recons = tensor_to_rgb8(&tch::no_grad(|| model.reconstruct(&x)));
    let n = images.len() as f64;
    let p = images
        .iter()
        .zip(&recons)
        .map(|(i, r)| psnr(&i.data, r))
        .sum::<f64>()
        / n;
    let s = images
        .iter()
        .zip(&recons)
        .map(|(i, r)| ssim(r, &i.data, RES, RES))
        .sum::<f64>()
        / n;
    Ok(Scores {
        psnr: p,
        ssim: s,
        recons,
    })
}

/// What the tokenizer part leaves for the SiT part.
pub struct Trained {
    /// The summary's section.
    pub text: String,
    /// Stage 2's final step folder (an MAETok checkpoint folder).
    pub tokenizer: std::path::PathBuf,
    /// The shards it was trained on.
    pub shards: std::path::PathBuf,
    /// The held-out ImageFolder it was scored on.
    pub held_out: std::path::PathBuf,
}

/// Runs the tokenizer part under `out`.
pub fn run(
    out: &Path,
    per_class: usize,
    steps: u64,
    decoder_steps: u64,
    seed: u64,
    threads: usize,
) -> anyhow::Result<Trained> {
    let folder = synth::write_imagefolder(&out.join("data/tokenizer"), per_class)
        .context("writing the tokenizer's ImageFolder")?;
    let shards = out.join("shards/tiny128");
    let cfg = PreprocessConfig {
        inputs: vec![folder.display().to_string()],
        resolution: RES,
        views: 2,
        shard_rows: 64,
        row_group_rows: 32,
        ..Default::default()
    };
    preprocess::run(
        &cfg,
        &RunOptions {
            output: shards.clone(),
            threads,
            node_rank: 0,
            num_nodes: 1,
            show_progress: true,
        },
    )
    .context("preprocessing the 128-px tokenizer shards")?;
    let held_dir = synth::write_imagefolder_from(&out.join("data/heldout"), per_class, HELD_OUT)?;
    let held = super::images::load(&held_dir.display().to_string(), RES)?;

    let mut s1 = TrainConfig::parse(include_str!("../../../configs/demo-tokenizer.toml"))
        .map_err(anyhow::Error::msg)?;
    s1.data.shards = shards.clone();
    s1.train.steps = steps;
    s1.train.seed = seed;
    let (tokens, dim) = (s1.model.num_latent_tokens, s1.model.latent_dim);
    let run1 = out.join("runs/tokenizer");
    println!(
        "demo tokenizer: stage 1, {steps} steps (mask modeling + HOG decoder) → {}",
        run1.display()
    );
    train(TrainOptions {
        stage: Stage::Tokenizer,
        config: s1,
        run_dir: run1.clone(),
        max_steps: None,
        verify_shards: false,
        launch: maetok_dist::Launch::single(),
    })?;
    let mut s2 = TrainConfig::parse(include_str!("../../../configs/demo-decoder.toml"))
        .map_err(anyhow::Error::msg)?;
    s2.data.shards = shards.clone();
    s2.train.steps = decoder_steps;
    s2.train.seed = seed;
    s2.aux.clear();
    s2.decoder_ft.from = Some(run1.clone());
    let run2 = out.join("runs/decoder");
    println!(
        "demo tokenizer: stage 2, {decoder_steps} steps (encoder frozen, mask 0.6 → 0) → {}",
        run2.display()
    );
    train(TrainOptions {
        stage: Stage::Decoder,
        config: s2,
        run_dir: run2.clone(),
        max_steps: None,
        verify_shards: false,
        launch: maetok_dist::Launch::single(),
    })?;

    let mut seen = super::images::load(&shards.display().to_string(), RES)?;
    seen.images.truncate(SCORED);
    let baseline = |imgs: &[maetok_pipeline::image::Rgb8]| {
        imgs.iter()
            .map(|i| psnr(&i.data, &mean_colour(&i.data)))
            .sum::<f64>()
            / imgs.len() as f64
    };
    let (dir1, dir2) = (resolve_from(&run1, false)?, resolve_from(&run2, false)?);
    let (ta, tb) = (score(&dir1, &seen.images)?, score(&dir2, &seen.images)?);
    let a = score(&dir1, &held.images)?;
    let b = score(&dir2, &held.images)?;
    let base = baseline(&held.images);
    let tbase = baseline(&seen.images);
    let rows: Vec<(&str, Vec<&[u8]>)> = vec![
        (
            "held out",
            held.images.iter().map(|i| i.data.as_slice()).collect(),
        ),
        ("stage 1", a.recons.iter().map(|r| r.as_slice()).collect()),
        ("stage 2", b.recons.iter().map(|r| r.as_slice()).collect()),
    ];
    let grid = out.join("tokenizer.png");
    maetok_trainer::viz::write_rows(&rows, RES, &grid)?;
    let text = format!(
        "## tokenizer\n\nTiny MAETok (128 px, {tokens} latent tokens × {dim}) trained on {} synthetic \
         images; `tokenizer.png`: held-out originals, stage 1, stage 2; runs in `runs/`.\n\n\
         | PSNR dB (SSIM) | training images (first {}) | held-out images ({}) |\n|---|---|---|\n\
         | mean-colour baseline | {tbase:.2} | {base:.2} |\n\
         | stage 1 ({steps} steps) | {:.2} ({:.4}) | {:.2} ({:.4}) |\n\
         | stage 2 (+{decoder_steps} steps) | {:.2} ({:.4}) | {:.2} ({:.4}) |\n\n\
         Stage 2 vs the baseline: {:+.2} dB held out, {:+.2} dB on the training images. A CPU \
         schedule of minutes on simple images; the paper trains 500K steps on ImageNet.\n",
        per_class * synth::CLASSES.len(),
        seen.images.len(),
        held.images.len(),
        ta.psnr,
        ta.ssim,
        a.psnr,
        a.ssim,
        tb.psnr,
        tb.ssim,
        b.psnr,
        b.ssim,
        b.psnr - base,
        tb.psnr - tbase
    );
    println!(
        "demo tokenizer: PSNR on the training images: mean-colour {tbase:.2} dB, stage 1 {:.2} dB, \
         stage 2 {:.2} dB ({:+.2} dB); held out: mean-colour {base:.2} dB, stage 1 {:.2} dB, \
         stage 2 {:.2} dB ({:+.2} dB); wrote {}",
        ta.psnr,
        tb.psnr,
        tb.psnr - tbase,
        a.psnr,
        b.psnr,
        b.psnr - base,
        grid.display()
    );
    Ok(Trained {
        text,
        tokenizer: dir2,
        shards,
        held_out: held_dir,
    })
}
