//! The SiT training loop (`maetok train sit`, spec §7.2–7.3): velocity matching on cached
//! latents, AdamW at a constant lr (optional warm-up), gradient clipping, EMA, bf16 autocast
//! on GPU, data-parallel through the same collectives as the tokenizer. The same loop trains
//! LightningDiT (spec §7.5: `model.preset = "LightningDiT-XL/1"`, with the cosine-direction
//! term through `transport.cosine_weight`); the model's time convention is its own business
//! (`maetok_models::denoiser`).
//!
//! Every draw of step s is keyed by (seed, s, stream, global sample index) (`rng.rs`): the
//! time draw, the noise ε (libtorch's CPU generator seeded per sample, then moved to the
//! device) and the label-dropout coin. So a run gives the same updates on 1 or N processes,
//! and a run resumed from a step folder continues bit for bit on the CPU. Step folders are
//! SiT checkpoint folders (`model.safetensors` + `config.json`, the EMA weights in `ema/`),
//! which `maetok sample --model` and the official `SiT.from_pretrained` read directly.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use maetok_diffusion::{cosine_direction, velocity_mse, TrainingPair};
use maetok_dist::grads::{average_grads, broadcast_tensors, check_identical, mean_values};
use maetok_dist::Launch;
use maetok_models::denoiser::Denoiser;
use maetok_nn::autocast::autocast;
use maetok_nn::weights::write_safetensors_atomic;
use maetok_pipeline::preprocess::fault;
use maetok_pipeline::shard::latent::LatentFolder;
use tch::{Device, Kind, Tensor};

use crate::data::index::DataCursor;
use crate::data::latents::{LatentLoader, LatentLoaderConfig};
use crate::run::{
    latent_dataset_identity, sha256_hex, Guard, Meter, Retention, RunDir, TrainState, TrainSummary,
};
use crate::sample::keyed_normal;
use crate::train::adamw::AdamW;
use crate::train::ema::Ema;
use crate::train::job::{rank_device, Job};
use crate::train::restore::restore_optimizer_and_ema;
use crate::train::rng::{sample_rngs, seed_torch, seed_torch_for, Stream};

pub mod config;
pub mod grid;

pub use config::{Normalize, SitTrainConfig};

/// What a step folder's `state.json` says it holds.
pub const STAGE: &str = "sit";

pub struct SitTrainOptions {
    pub config: SitTrainConfig,
    pub run_dir: PathBuf,
    /// Stop after this many steps in this process (the run still spans `train.steps`).
    pub max_steps: Option<u64>,
    pub verify_shards: bool,
    pub launch: Launch,
}

/// What ties a step folder to its run: the resolved config without the paths that may move
/// (the latent folder, the tokenizer), the device, the loader's cache budget, and how the
/// ranks talk.
fn identity(config_toml: &str) -> anyhow::Result<String> {
    let mut c = SitTrainConfig::parse_unchecked(config_toml)?;
    c.data.latents = PathBuf::new();
    c.data.tokenizer = None;
    c.data.cache_mb = 0;
    c.train.device = String::new();
    c.dist = Default::default();
    Ok(c.to_toml())
}

/// (mean, std) the latents are normalised with (spec §6).
pub fn latent_statistics(
    cfg: &SitTrainConfig,
    folder: &LatentFolder,
) -> anyhow::Result<(f64, f64)> {
    Ok(match cfg.data.normalize {
        Normalize::None => (0.0, 1.0),
        Normalize::Manifest => folder.mean_std().context(
            "data.normalize = \"manifest\": the latent folder's manifest has no mean/std",
        )?,
        Normalize::Tokenizer => {
            let dir = cfg
                .data
                .tokenizer
                .as_ref()
                .context("data.tokenizer is not set")?;
            let c = maetok_models::maetok::AeConfig::load(&dir.join("config.json"))
                .with_context(|| format!("data.tokenizer = {}", dir.display()))?;
            match (c.vq_mean, c.vq_std) {
                (Some(m), Some(s)) => (m, s),
                _ => {
                    tracing::warn!(
                        "{}: config.json has no vq_mean/vq_std, so latents are used as they \
                         are (mean 0, std 1); `maetok encode --write-stats` measures them",
                        dir.display()
                    );
                    (0.0, 1.0)
                }
            }
        }
    })
}

/// Trains SiT as the process `opts.launch` names; an error on any rank stops every rank.
pub fn train(opts: SitTrainOptions) -> anyhow::Result<TrainSummary> {
    let cfg = &opts.config;
    let device = rank_device(&cfg.train.device, &opts.launch)?;
    let folder = LatentFolder::open(&cfg.data.latents)
        .with_context(|| format!("data.latents = {}", cfg.data.latents.display()))?;
    let stats = latent_statistics(cfg, &folder)?;
    let dataset_sha = latent_dataset_identity(&folder);
    let agreed =
        sha256_hex(format!("{}\n{dataset_sha}\n{:?}", identity(&cfg.to_toml())?, stats).as_bytes());
    let mut job = Job::join(
        &opts.launch,
        &cfg.dist,
        cfg.data.batch_size,
        &agreed,
        device,
    )?;
    let r = train_in(&mut job, &opts, device, &folder, &dataset_sha, stats);
    if let Err(e) = &r {
        job.comm.abort(&format!("{e:#}"));
    }
    r
}

/// Per-sample draws of one step for the global rows `rows`: times (B,) f32, noise (B, L, C)
/// f32 on the CPU, and the label-dropout coins.
fn draws(
    cfg: &SitTrainConfig,
    step: u64,
    rows: &[u64],
    shape: (i64, i64),
) -> (Tensor, Tensor, Vec<bool>) {
    let seed = cfg.train.seed;
    let normal = cfg.transport.time_sampling.wants_normal();
    let t: Vec<f32> = sample_rngs(seed, step, Stream::Time, rows)
        .iter_mut()
        .map(|r| if normal { r.normal() } else { r.uniform() } as f32)
        .collect();
    let noise = keyed_normal(seed, step, Stream::Noise, rows, &[shape.0, shape.1]);
    let p = cfg.model.class_dropout_prob;
    let drop = sample_rngs(seed, step, Stream::LabelDrop, rows)
        .iter_mut()
        .map(|r| r.uniform() < p)
        .collect();
    let t = cfg
        .transport
        .time_sampling
        .time(&Tensor::from_slice(&t), cfg.transport.path);
    (t, noise, drop)
}

fn train_in(
    job: &mut Job,
    opts: &SitTrainOptions,
    device: Device,
    folder: &LatentFolder,
    dataset_sha: &str,
    stats: (f64, f64),
) -> anyhow::Result<TrainSummary> {
    let cfg = &opts.config;
    let ranks = job.ranks;
    let root = job.is_root();
    let run = job.open_run(&opts.run_dir, &cfg.to_toml(), identity)?;
    let config_sha = run.config_sha256()?;
    let [tokens, channels] = folder.manifest().latent_shape.map(|v| v as i64);
    let model_cfg = cfg.denoiser(tokens, channels);

    // The model: resumed from the run's latest step folder, or fresh from the seed.
    let data = format!(
        "the latents at {} (data.latents, --latents)",
        cfg.data.latents.display()
    );
    let resume = run.resume_point(STAGE, dataset_sha, &data)?;
    let mut model = match &resume {
        Some((dir, _)) => {
            let m = Denoiser::load(dir).with_context(|| format!("loading {}", dir.display()))?;
            anyhow::ensure!(
                m.config() == model_cfg,
                "{}: its config.json is not the model this config builds",
                dir.display()
            );
            m
        }
        None => {
            seed_torch_for(cfg.train.seed, 0, Stream::Init);
            Denoiser::fresh(model_cfg.clone())?
        }
    };
    model.to(device, Kind::Float);
    let state: Vec<Tensor> = model.vars().named().into_iter().map(|(_, t)| t).collect();
    broadcast_tensors(job.comm.as_mut(), &state)?;
    let params = model.vars().params(|_| true);
    let trained: Vec<Tensor> = params.iter().map(|(_, t)| t.shallow_clone()).collect();
    for t in &trained {
        let _ = t.set_requires_grad(true);
    }
    let mut opt = AdamW::new(&params, cfg.adamw());
    let mut ema = Ema::new(&params, cfg.optim.ema_decay);
    let (mut step, mut cursor) = (0u64, DataCursor::default());
    if let Some((dir, st)) = &resume {
        restore_optimizer_and_ema(dir, st, &mut opt, &mut ema, device)?;
        (step, cursor) = (st.step, st.cursor);
    }
    let history = if root {
        run.truncate_metrics(step)?
    } else {
        Vec::new()
    };
    let loader = LatentLoader::start(
        LatentLoaderConfig {
            dir: cfg.data.latents.clone(),
            batch_size: cfg.data.batch_size / ranks.world,
            seed: cfg.train.seed,
            rank: ranks.rank,
            world: ranks.world,
            prefetch: cfg.data.prefetch,
            verify: opts.verify_shards,
            num_classes: cfg.model.num_classes,
            normalize: stats,
            cache_bytes: cfg.data.cache_mb << 20,
        },
        cursor,
    )?;
    let null = model_cfg.null_label().unwrap_or(0);
    let cosine_weight = cfg.transport.cosine_weight;
    let sched = cfg.schedule();
    let bucket_bytes = (cfg.dist.bucket_mb * (1 << 20) as f64) as usize;
    let autocast_kind = cfg.train.precision.autocast_kind(device);
    let total = cfg.train.steps;
    let stop_at = opts.max_steps.map_or(total, |m| (step + m).min(total));
    let start_step = step;
    tracing::info!(
        "sit: {} {} ({:.1} M parameters) on {tokens} × {channels} latents of {} images, steps \
         {start_step}..{stop_at} of {total}, batch {}, latents normalised with mean {:.4} std \
         {:.4}, on {device:?}",
        model_cfg.family(),
        cfg.model.preset,
        params.iter().map(|(_, t)| t.numel()).sum::<usize>() as f64 / 1e6,
        loader.images,
        cfg.data.batch_size,
        stats.0,
        stats.1
    );
    let grid = if root {
        Some(grid::Grid::new(cfg, (tokens, channels), stats, device)?)
    } else {
        None
    };
    let title = format!(
        "{} (sit)",
        run.root.file_name().map_or_else(
            || run.root.display().to_string(),
            |n| n.to_string_lossy().into_owned()
        )
    );
    let mut meter = Meter::new(title, |k| k == "loss", &history);
    let mut guard = Guard::new(resume.as_ref().map(|(d, _)| d.clone()));
    let mut final_losses = Vec::new();
    while step < stop_at {
        let t0 = Instant::now();
        let batch = loader.next_batch().map_err(|e| guard.data(step, e))?;
        meter.waited(t0.elapsed().as_secs_f64());
        let b = batch.latents.size()[0];
        let rows = ranks.global_rows(b as usize);
        let (t, noise, drop) = draws(cfg, step, &rows, (tokens, channels));
        seed_torch(cfg.train.seed, step);
        let dropped: Vec<i64> = Vec::<i64>::try_from(&batch.labels)?
            .into_iter()
            .zip(&drop)
            .map(|(y, &d)| if d { null } else { y })
            .collect();
        let x0 = batch.latents.to_device(device);
        let y = Tensor::from_slice(&dropped).to_device(device);
        let t = t.to_device(device);
        let pair = TrainingPair::new(cfg.transport.path, &x0, &noise.to_device(device), &t);
        let loss = autocast(device, autocast_kind, || {
            let out = model.forward(&pair.input, &t, &y);
            let mse = velocity_mse(&out, &pair.target).mean(Kind::Float);
            if cosine_weight > 0.0 {
                mse + cosine_direction(&out, &pair.target).mean(Kind::Float) * cosine_weight
            } else {
                mse
            }
        });
        let mine = f64::try_from(loss.detach()).unwrap_or(f64::NAN);
        let loss_v = mean_values(job.comm.as_mut(), &[mine])?[0];
        guard.loss(step, loss_v, &[])?;

        opt.zero_grad();
        loss.backward();
        fault::point("train_backward");
        average_grads(job.comm.as_mut(), &trained, bucket_bytes)?;
        let grad_norm = opt.clip_grad_norm(if cfg.optim.grad_clip > 0.0 {
            cfg.optim.grad_clip
        } else {
            f64::INFINITY
        });
        guard.grad_norm(step, grad_norm, loss_v)?;
        let lr = sched.lr(step);
        opt.step(lr);
        ema.update(&params);
        fault::point("train_updated");
        step += 1;
        if cfg.dist.check_every > 0 && step.is_multiple_of(cfg.dist.check_every) {
            check_identical(
                job.comm.as_mut(),
                &trained,
                &format!("the weights after step {step}"),
            )?;
        }
        meter.stepped();
        cursor = batch.cursor_after;
        final_losses = vec![("loss".to_string(), loss_v)];

        if root && (step.is_multiple_of(cfg.train.log_every.max(1)) || step == stop_at) {
            let mut record = serde_json::json!({
                "step": step,
                "loss": loss_v,
                "lr": lr,
                "grad_norm": grad_norm,
            });
            let line = format!("sit step {step}/{total}  loss {loss_v:.4}  lr {lr:.2e}");
            meter.log(
                &run,
                &mut record,
                &line,
                (step, stop_at, total),
                cfg.data.batch_size,
            )?;
        }
        let sample_now = (cfg.train.sample_every > 0
            && step.is_multiple_of(cfg.train.sample_every))
            || step == stop_at;
        if let (true, Some(g)) = (sample_now, &grid) {
            g.write(&model, &ema, device, &run.sample_path(step))?;
        }
        if step.is_multiple_of(cfg.train.checkpoint_every.max(1)) || step == stop_at {
            let dir = job.publish_step(&run, step, || {
                guard.params(step, &params)?;
                guard.params(step, ema.tensors())?;
                let st = TrainState {
                    stage: STAGE.into(),
                    step,
                    cursor,
                    world: ranks.world,
                    config_sha256: config_sha.clone(),
                    dataset_sha256: dataset_sha.to_string(),
                    lecam: Default::default(),
                };
                save_step(&run, cfg, &st, &model, &ema, &opt)
            })?;
            guard.last_checkpoint = Some(dir);
        }
    }
    TrainSummary::finish(
        &run,
        root,
        (start_step, step),
        guard.last_checkpoint,
        final_losses,
        cfg.data.batch_size,
        &meter,
    )
}

/// Writes step folder `st.step`: the weights and (in `ema/`) the EMA weights as model
/// checkpoint folders, the optimiser moments, `state.json`.
fn save_step(
    run: &RunDir,
    cfg: &SitTrainConfig,
    st: &TrainState,
    model: &Denoiser,
    ema: &Ema,
    opt: &AdamW,
) -> anyhow::Result<PathBuf> {
    let keep = Retention {
        keep: cfg.train.keep_checkpoints,
        milestone_every: cfg.train.milestone_every,
    };
    let dir = run.checkpoint(st.step, keep, |tmp| {
        model.save(tmp)?;
        model.save_with(&tmp.join("ema"), &ema_map(ema))?;
        fault::point("train_checkpoint_filling");
        write_safetensors_atomic(&opt.state_tensors(), &tmp.join("optimizer.safetensors"))?;
        maetok_nn::atomic::write(
            &tmp.join("state.json"),
            serde_json::to_string_pretty(st)?.as_bytes(),
        )?;
        Ok(())
    })?;
    fault::point("train_checkpoint_written");
    tracing::info!("checkpoint {}", dir.display());
    Ok(dir)
}

fn ema_map(ema: &Ema) -> HashMap<&str, &Tensor> {
    ema.tensors().iter().map(|(k, t)| (k.as_str(), t)).collect()
}

/// A SiT folder, a step folder (its `ema/` by default), or a run folder (its latest step):
/// the folder holding the SiT weights to use.
pub fn resolve_model(path: &Path, ema: bool) -> anyhow::Result<PathBuf> {
    crate::train::tokenizer::resolve_from(path, ema)
}
