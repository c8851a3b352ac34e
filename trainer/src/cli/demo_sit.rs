//! The demo's diffusion part (issue 13): the demo tokenizer's latents of its training
//! images (`maetok encode`), a tiny SiT trained on them (`configs/sit-tiny.toml`), and a
//! class-balanced grid sampled from its EMA weights and decoded by the tokenizer.

use std::path::Path;

use anyhow::Context;
use maetok_trainer::train::sit::{train, Normalize, SitTrainConfig, SitTrainOptions};

/// What the SiT part leaves for the evaluation.
pub struct Trained {
    /// The summary's section.
    pub text: String,
    /// The latent folder it trained on.
    pub latents: std::path::PathBuf,
    /// Its run folder.
    pub run_dir: std::path::PathBuf,
    /// The classes of the latents (ImageNet indices of the demo's classes).
    pub labels: Vec<i64>,
}

/// Runs the SiT part under `out` from the tokenizer folder `tokenizer` and the shards it
/// was trained on.
pub fn run(
    out: &Path,
    tokenizer: &Path,
    shards: &Path,
    steps: u64,
    seed: u64,
) -> anyhow::Result<Trained> {
    let latents = out.join("latents/tiny128");
    println!(
        "demo sit: encoding the tokenizer's training images (crop and flip) → {}",
        latents.display()
    );
    super::codec::encode_folder(tokenizer, shards, &latents)?;
    let mut cfg = SitTrainConfig::parse(include_str!("../../../configs/sit-tiny.toml"))
        .map_err(anyhow::Error::msg)?;
    cfg.data.latents = latents.clone();
    cfg.data.tokenizer = Some(tokenizer.to_path_buf());
    // The folder's measured statistics: the demo leaves the tokenizer's config.json as it is.
    cfg.data.normalize = Normalize::Manifest;
    cfg.train.steps = steps;
    cfg.train.seed = seed;
    cfg.train.log_every = (steps / 20).max(1);
    // One row per class of the demo's ImageFolder (their ImageNet indices, as encoded).
    let mut labels = std::collections::BTreeSet::new();
    for rows in maetok_pipeline::shard::latent::LatentFolder::open(&latents)?.read_all() {
        let rows = rows?;
        for i in 0..rows.len() {
            labels.extend(rows.label(i)?.map(i64::from));
        }
    }
    let labels: Vec<i64> = labels.into_iter().collect();
    cfg.train.grid_labels = labels.clone();
    let run_dir = out.join("runs/sit");
    println!(
        "demo sit: {} ({:.1} M parameters), {steps} steps on 128 × 32 latents → {}",
        cfg.model.preset,
        cfg.denoiser(128, 32).num_values() as f64 / 1e6,
        run_dir.display()
    );
    let summary = train(SitTrainOptions {
        config: cfg,
        run_dir: run_dir.clone(),
        max_steps: None,
        verify_shards: false,
        launch: maetok_dist::Launch::single(),
    })?;
    let grid_src = run_dir
        .join("samples")
        .join(format!("step-{:07}.png", summary.end_step));
    let grid = out.join("sit.png");
    std::fs::copy(&grid_src, &grid).with_context(|| format!("copying {}", grid_src.display()))?;
    let losses: Vec<(u64, f64)> = std::fs::read_to_string(run_dir.join("metrics.jsonl"))?
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| Some((v["step"].as_u64()?, v["loss"].as_f64()?)))
        .collect();
    let (first, last) = (losses.first().copied(), losses.last().copied());
    let (Some((s0, l0)), Some((s1, l1))) = (first, last) else {
        anyhow::bail!("{}: no losses were logged", run_dir.display());
    };
    println!(
        "demo sit: velocity loss {l0:.4} at step {s0} → {l1:.4} at step {s1}; wrote {} \
         (EMA weights, Euler ODE, CFG, one row per class)",
        grid.display()
    );
    let text = format!(
        "## diffusion\n\nA tiny SiT (`configs/sit-tiny.toml`) trained {steps} steps on the demo \
         tokenizer's latents (`runs/sit/`); velocity MSE {l0:.4} at step {s0}, {l1:.4} at step \
         {s1} (`runs/sit/loss.png`). `sit.png`: samples of its EMA weights, one row per class, \
         decoded by the tokenizer. A CPU schedule of minutes; the paper trains SiT-XL for 4M steps.\n"
    );
    Ok(Trained {
        text,
        latents,
        run_dir,
        labels,
    })
}
