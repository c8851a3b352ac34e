//! The tokenizer training loop, both stages (spec §5.5, §5.4):
//!
//! * stage 1 (`train tokenizer`): mask modeling, pixel MSE on the whole image, each
//!   LPIPS with its linear warm-up, each auxiliary decoder's loss on the masked tokens, AdamW with decay groups, warm-up +
//!   cosine, gradient clipping, EMA;
//! * stage 2 (`train decoder`): encoder and `quant_conv` frozen, auxiliary decoders
//!   dropped, mask ratio annealed linearly from `mask_ratio_start` to 0.
//!
//! Every random draw of step s is a function of (seed, s) and, for per-sample draws, of the
//! sample's place in the global batch (`rng.rs`), never of the rank; the data cursor is
//! saved, so a run resumed from a step folder makes the same updates, bit for bit on
//! the CPU, as one that never stopped. A non-finite loss or gradient norm stops the run
//! before the update: the last step folder stays the last good state.
//!
//! With `gan.disc_weight > 0`, from `gan.disc_start` on: the DINO discriminator's hinge
//! loss with the adaptive weight in the generator step, then a discriminator step on the
//! same batch (hinge + LeCAM + consistency, DiffAugment). Before the start no discriminator
//! forward runs at all (the reference runs it with weight 0; the only states that differ
//! are the spectral-norm power-iteration vectors, which converge within a few steps, and
//! the ~0.06 % AdamW weight decay of heads that get zero gradients).
//!
//! An auxiliary entry with `loss = "caption"` (target `text_ids`) is the caption decoder
//! of spec §4.5 (UNCONFIRMED design: see `maetok/aux.rs`).
//!
//! `train.precision` (`precision.rs`): the forward pass, the losses and the discriminator
//! step run under libtorch's autocast (bf16 on CUDA by default); backward, the optimiser
//! and EMA stay fp32.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use maetok_pipeline::preprocess::fault;
use tch::Tensor;

use crate::data::index::DataCursor;
use crate::data::loader::Batch;
use crate::losses::diffaug::SampleDraws;
use crate::run::{
    dataset_identity, sha256_hex, Guard, Meter, Retention, RunDir, TrainState, TrainSummary,
};
use crate::viz::{tensor_to_rgb8, write_grid};
use maetok_models::maetok::aux::{caption_target, AuxLoss};
use maetok_models::maetok::mask::{masked_count, sample_mask, sample_ratio};
use maetok_nn::weights::write_safetensors_atomic;

use super::adamw::AdamW;
use super::config::TrainConfig;
use super::ema::Ema;
use super::job::{rank_device, Job};
use super::model::{Tokenizer, Trained};
use super::objective::{pixel_objective, PixelObjective};
use super::pool::Pool;
use super::rng::{sample_rngs, seed_torch, step_rng, Stream};
use maetok_dist::grads::{average_grads, broadcast_tensors, check_identical, mean_values};
use maetok_dist::Launch;
use maetok_nn::autocast::autocast;

mod gan;
mod setup;

use gan::GanState;
pub use setup::resolve_from;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Stage 1: mask modeling with auxiliary decoders.
    Tokenizer,
    /// Stage 2: pixel-decoder fine-tuning.
    Decoder,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Tokenizer => "tokenizer",
            Stage::Decoder => "decoder",
        }
    }
}

pub struct TrainOptions {
    pub stage: Stage,
    pub config: TrainConfig,
    pub run_dir: PathBuf,
    /// Stop after this many steps in this process (the schedule still spans
    /// `train.steps`), e.g. for smoke tests.
    pub max_steps: Option<u64>,
    /// Check every shard's sha256 against the manifest before the first step (sizes are
    /// always checked).
    pub verify_shards: bool,
    /// Which process of the job this is (`Launch::from_env()` in the binary).
    pub launch: Launch,
}

/// What ties a step folder to its run: the resolved config without the paths that may
/// move between a run and its resume (the shard folder, stage 2's source run, whose step
/// folder is no longer read once the run has its own) and the device it runs on. The
/// dataset itself is tied by content (`dataset_identity`).
fn identity(config_toml: &str) -> anyhow::Result<String> {
    let mut c = TrainConfig::parse_unchecked(config_toml)?;
    c.data.shards = PathBuf::new();
    c.decoder_ft.from = None;
    c.train.device = String::new();
    // How the ranks talk is not part of what they train.
    c.dist = Default::default();
    Ok(c.to_toml())
}

/// The metrics drawn in loss.png.
fn plotted(key: &str) -> bool {
    key == "loss" || key == "rec" || key == "lpips" || key.starts_with("aux_")
}

/// Trains the stage of `opts` as the process `opts.launch` names; with more than one, an
/// error on any rank stops every rank, each naming the rank where it began.
pub fn train(opts: TrainOptions) -> anyhow::Result<TrainSummary> {
    let cfg = &opts.config;
    let device = rank_device(&cfg.train.device, &opts.launch)?;
    // The config against the shards before anything is built (stage 1: the model is the
    // config's); stage 2's model is checked against them once loaded.
    let shards = maetok_pipeline::shard::reader::ShardFolder::open(&cfg.data.shards)
        .with_context(|| format!("data.shards = {}", cfg.data.shards.display()))?;
    if opts.stage == Stage::Tokenizer {
        super::validate::check_against_shards(cfg, &shards, cfg.model.image_size, true)
            .map_err(anyhow::Error::msg)?;
    }
    let dataset_sha = dataset_identity(&shards);
    // What every rank must agree on: the run's identity and the dataset's.
    let agreed = sha256_hex(format!("{}\n{dataset_sha}", identity(&cfg.to_toml())?).as_bytes());
    let mut job = Job::join(
        &opts.launch,
        &cfg.dist,
        cfg.data.batch_size,
        &agreed,
        device,
    )?;
    let r = train_in(&mut job, &opts, device, &shards, &dataset_sha);
    if let Err(e) = &r {
        job.comm.abort(&format!("{e:#}"));
    }
    r
}

fn train_in(
    job: &mut Job,
    opts: &TrainOptions,
    device: tch::Device,
    shards: &maetok_pipeline::shard::reader::ShardFolder,
    dataset_sha: &str,
) -> anyhow::Result<TrainSummary> {
    let cfg = &opts.config;
    let ranks = job.ranks;
    let root = job.is_root();
    let stage = opts.stage;
    let seed = cfg.train.seed;
    let run = job.open_run(&opts.run_dir, &cfg.to_toml(), identity)?;
    let config_sha = run.config_sha256()?;

    // The model, what trains, the optimiser and the EMA (resumed, from stage 1, or fresh).
    let start = setup::Start::open(&run, cfg, stage, shards, dataset_sha)?;
    super::validate::check_against_shards(cfg, shards, start.model.ae.shape.image_size(), false)
        .map_err(anyhow::Error::msg)?;
    let mut model = start.model;
    model.to(device);
    // Every rank starts from rank 0's weights and buffers (they are equal already when
    // drawn from the seed on the CPU; a GPU's draws, or a file that differs, would not be).
    broadcast_tensors(job.comm.as_mut(), &model.state())?;
    let grid = model.ae.encoder.grid;
    let n_tokens = grid.0 * grid.1;
    // Masking replaces patch embeddings by the encoder's mask token; a plain autoencoder
    // has none, and its stage 2 must not anneal a mask it cannot apply.
    let masks = match stage {
        Stage::Tokenizer => cfg.model.mask_modeling,
        Stage::Decoder => cfg.decoder_ft.mask_ratio_start > 0.0,
    };
    anyhow::ensure!(
        !masks || model.ae.encoder.mask_token.is_some(),
        "the tokenizer has no encoder.mask_token (trained without mask modeling), so it \
         cannot be masked: set decoder_ft.mask_ratio_start = 0"
    );
    let params: Vec<(String, Tensor)> = match stage {
        Stage::Tokenizer => model.params(Trained::All),
        Stage::Decoder => model.params(Trained::Decoder),
    };
    let mut opt = AdamW::new(&params, cfg.adamw());
    let trained: Vec<Tensor> = params.iter().map(|(_, t)| t.shallow_clone()).collect();
    let mut ema = Ema::new(&params, cfg.optim.ema_decay);
    let (mut step, mut cursor) = (0u64, DataCursor::default());
    if let Some((dir, st)) = &start.resume {
        super::restore::restore_optimizer_and_ema(dir, st, &mut opt, &mut ema, device)?;
        (step, cursor) = (st.step, st.cursor);
    }
    let history = if root {
        run.truncate_metrics(step)?
    } else {
        Vec::new()
    };
    let lpips = setup::lpips(cfg, device)?;
    let resume = start.resume.as_ref().map(|(d, st)| (d.as_path(), st));
    let mut gan = GanState::start(cfg, stage, resume, device)?;
    if let Some(g) = &gan {
        let heads: Vec<Tensor> = g.disc.state_dict().into_iter().map(|(_, t)| t).collect();
        broadcast_tensors(job.comm.as_mut(), &heads)?;
    }
    let loader = setup::loader(cfg, stage, ranks, device, cursor, opts.verify_shards)?;
    let sched = cfg.schedule(cfg.optim.warmup_steps);
    let bucket_bytes = (cfg.dist.bucket_mb * (1 << 20) as f64) as usize;
    let autocast_kind = cfg.train.precision.autocast_kind(device);
    let total = cfg.train.steps;
    let stop_at = opts.max_steps.map_or(total, |m| (step + m).min(total));
    let start_step = step;
    log_start(cfg, stage, &params, (start_step, stop_at), device);

    let title = format!(
        "{} ({})",
        run.root.file_name().map_or_else(
            || run.root.display().to_string(),
            |n| n.to_string_lossy().into_owned()
        ),
        stage.name()
    );
    let mut meter = Meter::new(title, plotted, &history);
    let mut guard = Guard::new(start.resume.as_ref().map(|(d, _)| d.clone()));
    let mut final_losses = Vec::new();
    while step < stop_at {
        let t0 = Instant::now();
        let batch = loader.next_batch().map_err(|e| guard.data(step, e))?;
        meter.waited(t0.elapsed().as_secs_f64());
        let x = batch.images.to_device(device);
        let b = x.size()[0];

        // Masking (spec §3, §5.4): the ratio per step, the positions per sample.
        let rows = ranks.global_rows(b as usize);
        let ratio = match stage {
            Stage::Tokenizer if !cfg.model.mask_modeling => 0.0,
            Stage::Tokenizer => {
                let mut r = step_rng(seed, step, Stream::Mask);
                sample_ratio(&mut || r.uniform())
            }
            Stage::Decoder => cfg.decoder_ft.mask_ratio_start * (1.0 - step as f64 / total as f64),
        };
        let mask = (masked_count(n_tokens, ratio) > 0).then(|| {
            sample_mask(
                n_tokens,
                ratio,
                &mut sample_rngs(seed, step, Stream::Mask, &rows),
            )
            .to_device(device)
        });
        seed_torch(seed, step);
        let global_step = step + 1;
        let mut aug_rng = SampleDraws {
            batch: step_rng(seed, step, Stream::Augment),
            rows: sample_rngs(seed, step, Stream::Augment, &rows),
        };
        let mut crop_rng = step_rng(seed, step, Stream::Crop);
        let dropout_keys: Vec<u64> = sample_rngs(seed, step, Stream::Dropout, &rows)
            .iter_mut()
            .map(|r| r.next_u64())
            .collect();

        // Forward and losses, under autocast when the precision asks for it (backward runs
        // outside, as in PyTorch).
        let (
            xhat,
            PixelObjective {
                loss,
                terms,
                mut gan_log,
                backward_extra,
            },
        ) = autocast(device, autocast_kind, || -> anyhow::Result<_> {
            let z = match stage {
                Stage::Tokenizer => model.ae.encode(&x, mask.as_ref()),
                Stage::Decoder => tch::no_grad(|| model.ae.encode(&x, mask.as_ref())),
            };
            let xhat = model.ae.decode(&z);
            let mut pool = Pool {
                comm: job.comm.as_mut(),
                ranks,
            };
            let mut objective = pixel_objective(
                &x,
                &xhat,
                cfg,
                step,
                lpips.as_ref(),
                gan.as_ref().map(|g| &g.disc),
                model.ae.decoder.last_layer(),
                &mut aug_rng,
                &mut crop_rng,
                &dropout_keys,
                &mut pool,
            )?;
            // The auxiliary targets are predicted at the masked tokens (a plain autoencoder
            // has neither, validate.rs).
            if let (Stage::Tokenizer, Some(mask)) = (stage, mask.as_ref()) {
                aux_losses(&model, cfg, &batch, &z, mask, &mut objective)?;
            }
            Ok((xhat, objective))
        })?;
        let mut values: Vec<(String, f64)> = terms
            .iter()
            .map(|(k, t)| (k.clone(), f64::try_from(t.detach()).unwrap_or(f64::NAN)))
            .collect();
        let mut loss_v = f64::try_from(loss.detach()).unwrap_or(f64::NAN);
        // Every rank logs (and judges) the mean over the ranks, so all stop together.
        let mine: Vec<f64> = std::iter::once(loss_v)
            .chain(values.iter().map(|(_, v)| *v))
            .collect();
        let mean = mean_values(job.comm.as_mut(), &mine)?;
        loss_v = mean[0];
        for ((_, v), m) in values.iter_mut().zip(&mean[1..]) {
            *v = *m;
        }
        guard.loss(step, loss_v, &values)?;

        // Update.
        opt.zero_grad();
        match &backward_extra {
            Some(extra) => (&loss + extra).backward(),
            None => loss.backward(),
        }
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
        if let Some(g) = gan.as_mut().filter(|_| cfg.gan.active(global_step)) {
            gan_log.extend(g.step(
                cfg,
                &x,
                &xhat,
                global_step,
                lr,
                (device, autocast_kind),
                &mut aug_rng,
                &mut crop_rng,
                &mut Pool {
                    comm: job.comm.as_mut(),
                    ranks,
                },
            )?);
        }
        fault::point("train_updated");
        step += 1;
        if cfg.dist.check_every > 0 && step % cfg.dist.check_every == 0 {
            check_identical(
                job.comm.as_mut(),
                &trained,
                &format!("the weights after step {step}"),
            )?;
            if let Some(g) = &gan {
                check_identical(
                    job.comm.as_mut(),
                    &g.trained(),
                    &format!("the discriminator's heads after step {step}"),
                )?;
            }
        }
        meter.stepped();
        cursor = batch.cursor_after;

        // Log, pictures, checkpoints.
        let mut record = serde_json::json!({
            "step": step,
            "loss": loss_v,
            "lr": lr,
            "grad_norm": grad_norm,
            "mask_ratio": if mask.is_some() { ratio } else { 0.0 },
        });
        for (k, v) in values.iter().chain(&gan_log) {
            record[k] = serde_json::json!(v);
        }
        final_losses = values.clone();
        final_losses.insert(0, ("loss".into(), loss_v));
        if root && (step % cfg.train.log_every.max(1) == 0 || step == stop_at) {
            let line = format!(
                "{} step {step}/{total}  loss {loss_v:.4}  {}  lr {lr:.2e}",
                stage.name(),
                values
                    .iter()
                    .map(|(k, v)| format!("{k} {v:.4}"))
                    .collect::<Vec<_>>()
                    .join("  "),
            );
            meter.log(
                &run,
                &mut record,
                &line,
                (step, stop_at, total),
                cfg.data.batch_size,
            )?;
        }
        if root
            && ((cfg.train.sample_every > 0 && step % cfg.train.sample_every == 0)
                || step == stop_at)
        {
            let n = (cfg.train.grid_images as i64).min(b);
            let xs = x.narrow(0, 0, n);
            let recon = tch::no_grad(|| model.ae.reconstruct(&xs));
            let (o, r) = (tensor_to_rgb8(&xs), tensor_to_rgb8(&recon));
            let o: Vec<&[u8]> = o.iter().map(|v| v.as_slice()).collect();
            let r: Vec<&[u8]> = r.iter().map(|v| v.as_slice()).collect();
            let res = model.config().image_size as usize;
            write_grid(&o, &r, res, n as usize, &run.sample_path(step))?;
        }
        if step % cfg.train.checkpoint_every.max(1) == 0 || step == stop_at {
            // Rank 0 writes; the others wait until the step folder is complete. Nothing
            // non-finite is ever published as a step folder.
            let dir = job.publish_step(&run, step, || {
                guard.params(step, &params)?;
                guard.params(step, ema.tensors())?;
                let st = TrainState {
                    stage: stage.name().into(),
                    step,
                    cursor,
                    world: ranks.world,
                    config_sha256: config_sha.clone(),
                    dataset_sha256: dataset_sha.to_string(),
                    lecam: gan.as_ref().map(|g| g.lecam).unwrap_or_default(),
                };
                save_step(&run, cfg, &st, &model, &ema, &opt, gan.as_ref())
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

/// Adds each auxiliary decoder's loss on the masked tokens to `objective` (spec §4).
fn aux_losses(
    model: &Tokenizer,
    cfg: &TrainConfig,
    batch: &Batch,
    z: &Tensor,
    mask: &Tensor,
    objective: &mut PixelObjective,
) -> anyhow::Result<()> {
    let device = z.device();
    let grid = model.ae.encoder.grid;
    for (a, ac) in model.aux.iter().zip(&cfg.aux) {
        let target = if a.loss == AuxLoss::Caption {
            caption_target(&batch.text_ids, a.decoder.out_dim).to_device(device)
        } else {
            target_of(batch, &ac.target, grid.0 * grid.1, grid)?.to_device(device)
        };
        let l = a.loss(&a.forward(z, grid), &target, mask);
        objective.loss += &l * ac.weight;
        objective.terms.push((format!("aux_{}", a.name), l));
    }
    Ok(())
}

/// Writes step folder `st.step`: weights and EMA weights in the released layout, the
/// optimiser moments, the discriminator, `state.json`.
fn save_step(
    run: &RunDir,
    cfg: &TrainConfig,
    st: &TrainState,
    model: &Tokenizer,
    ema: &Ema,
    opt: &AdamW,
    gan: Option<&GanState>,
) -> anyhow::Result<PathBuf> {
    let keep = Retention {
        keep: cfg.train.keep_checkpoints,
        milestone_every: 0,
    };
    let dir = run.checkpoint(st.step, keep, |tmp| {
        model.save(tmp, None)?;
        let e: std::collections::HashMap<&str, &Tensor> =
            ema.tensors().iter().map(|(k, t)| (k.as_str(), t)).collect();
        model.save(&tmp.join("ema"), Some(&e))?;
        fault::point("train_checkpoint_filling");
        write_safetensors_atomic(&opt.state_tensors(), &tmp.join("optimizer.safetensors"))?;
        if let Some(g) = gan {
            g.save(tmp)?;
        }
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

fn log_start(
    cfg: &TrainConfig,
    stage: Stage,
    params: &[(String, Tensor)],
    (from, to): (u64, u64),
    device: tch::Device,
) {
    tracing::info!(
        "{}: {} parameters train, steps {from}..{to} of {}, batch {}, {} on {:?}",
        stage.name(),
        params.iter().map(|(_, t)| t.numel()).sum::<usize>(),
        cfg.train.steps,
        cfg.data.batch_size,
        if stage == Stage::Tokenizer {
            format!(
                "aux targets [{}]",
                cfg.aux
                    .iter()
                    .map(|a| a.target.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            "no aux decoders".into()
        },
        device
    );
}

/// The batch's stored `name` target, checked against the tokenizer's grid.
fn target_of(batch: &Batch, name: &str, n_tokens: i64, grid: (i64, i64)) -> anyhow::Result<Tensor> {
    let t = batch
        .targets
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, t)| t.shallow_clone())
        .with_context(|| format!("the batch has no `{name}` target"))?;
    let tokens = t.size()[1];
    if tokens != n_tokens {
        bail!(
            "target `{name}` has {tokens} tokens per image; the tokenizer has {n_tokens} \
             ({}×{} patches): preprocess the teacher at the tokenizer's resolution with patch 16",
            grid.0,
            grid.1
        );
    }
    Ok(t)
}
