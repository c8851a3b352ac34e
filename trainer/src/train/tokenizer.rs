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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use maetok_pipeline::preprocess::fault;
use maetok_pipeline::shard::manifest::Manifest;
use tch::Tensor;

use crate::data::index::Cursor;
use crate::data::loader::{Batch, Loader, LoaderConfig};
use crate::losses::diffaug::SampleDraws;
use crate::losses::disc::Discriminator;
use crate::losses::gan::{discriminator_loss, LeCam};
use crate::losses::lpips::Lpips;
use crate::maetok::aux::{caption_target, AuxLoss};
use crate::maetok::mask::{masked_count, sample_mask, sample_ratio};
use crate::viz::{tensor_to_rgb8, write_grid, write_loss_curves};

use super::adamw::AdamW;
use super::config::TrainConfig;
use super::ema::Ema;
use super::model::{read_tensors, Tokenizer};
use super::objective::{pixel_objective, PixelObjective};
use super::precision::autocast;
use super::ranks::Ranks;
use super::rng::{sample_rngs, seed_torch, seed_torch_for, step_rng, Stream};
use super::run::{read_state, RunDir, TrainState};

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
}

/// What a finished (or stopped) call did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub start_step: u64,
    pub end_step: u64,
    pub last_checkpoint: Option<PathBuf>,
    pub final_losses: Vec<(String, f64)>,
    pub images_per_sec: f64,
    /// Share of wall time spent waiting for the loader.
    pub data_wait_fraction: f64,
}

/// Resolve `--from`: a run folder (its latest step), a step folder, or a model folder.
pub fn resolve_from(from: &Path, ema: bool) -> anyhow::Result<PathBuf> {
    let mut dir = from.to_path_buf();
    if dir.join("config.toml").exists() && dir.join("latest").exists() {
        let name = std::fs::read_to_string(dir.join("latest"))?;
        dir = dir.join("checkpoints").join(name.trim());
    }
    if ema && dir.join("ema/model.safetensors").exists() {
        dir = dir.join("ema");
    }
    if !dir.join("model.safetensors").exists() {
        bail!(
            "{}: no model.safetensors (expected a run folder, a step folder or an AEModel folder)",
            from.display()
        );
    }
    Ok(dir)
}

/// Widths of the target columns in the shard folder.
fn target_dims(cfg: &TrainConfig) -> anyhow::Result<HashMap<String, i64>> {
    let m = Manifest::read(&cfg.data.shards.join("manifest.json"))
        .with_context(|| format!("reading the shard folder {}", cfg.data.shards.display()))?;
    let mut dims: HashMap<String, i64> = m
        .teachers
        .iter()
        .map(|t| (t.name.clone(), t.dim as i64))
        .collect();
    if let Some(t) = &m.text {
        dims.insert("text_ids".into(), t.vocab_size as i64);
    }
    Ok(dims)
}

pub fn train(opts: TrainOptions) -> anyhow::Result<Summary> {
    let cfg = &opts.config;
    // One process for now: the distributed launch will set this, and only this.
    let ranks = Ranks::SINGLE;
    let device = maetok_teachers::device::parse_device(&cfg.train.device)
        .map_err(|e| anyhow::anyhow!("train.device: {e}"))?;
    let stage = opts.stage;
    let aux_on = stage == Stage::Tokenizer;
    let run = RunDir::open(&opts.run_dir, &cfg.to_toml())?;
    let config_sha = run.config_sha256()?;
    let latest = run.latest()?;

    // The model: resumed, started from stage 1, or fresh.
    let (model, state, resume_dir) = match &latest {
        Some(dir) => {
            let st = read_state(dir)?;
            if st.stage != stage.name() {
                bail!(
                    "{} holds a `{}` run; this is `train {}`",
                    run.root.display(),
                    st.stage,
                    stage.name()
                );
            }
            if st.config_sha256 != config_sha {
                bail!(
                    "{}: state.json was written under another config.toml",
                    dir.display()
                );
            }
            tracing::info!(
                "resuming {} from {} (step {})",
                stage.name(),
                dir.display(),
                st.step
            );
            (
                Tokenizer::load(dir, cfg, aux_on)?,
                Some(st),
                Some(dir.clone()),
            )
        }
        None => match stage {
            Stage::Tokenizer => {
                // The initial weights are a function of the seed (a run killed before its
                // first step folder restarts from the same ones).
                seed_torch_for(cfg.train.seed, 0, Stream::Init);
                (Tokenizer::fresh(cfg, &target_dims(cfg)?)?, None, None)
            }
            Stage::Decoder => {
                let from = cfg
                    .decoder_ft
                    .from
                    .as_ref()
                    .context("`train decoder` starts from a stage-1 run: pass --from RUN")?;
                let src = resolve_from(from, cfg.decoder_ft.from_ema)?;
                tracing::info!("stage 2 starts from {}", src.display());
                (Tokenizer::load(&src, cfg, false)?, None, None)
            }
        },
    };
    let model = model.to(device);
    let grid = model.ae.encoder.grid;
    let n_tokens = grid.0 * grid.1;
    let res = model.config().image_size;

    // What trains.
    let params: Vec<(String, Tensor)> = match stage {
        Stage::Tokenizer => model.stage1_params(),
        Stage::Decoder => model.ae.decoder_params(),
    };
    let mut opt = AdamW::new(&params, cfg.adamw());
    let mut ema = Ema::new(&params, cfg.optim.ema_decay);
    let (mut step, mut cursor) = (0u64, Cursor::default());
    if let (Some(st), Some(dir)) = (&state, &resume_dir) {
        let p = dir.join("optimizer.safetensors");
        let saved: HashMap<String, Tensor> = Tensor::read_safetensors(&p)
            .with_context(|| format!("reading {}", p.display()))?
            .into_iter()
            .map(|(k, t)| (k, t.to_device(device)))
            .collect();
        opt.load_state(st.step, saved)
            .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
        let saved: HashMap<String, Tensor> = read_tensors(&dir.join("ema"))?
            .into_iter()
            .map(|(k, t)| (k, t.to_device(device)))
            .collect();
        ema.load(saved)
            .map_err(|e| anyhow::anyhow!("{}/ema: {e}", dir.display()))?;
        step = st.step;
        cursor = st.cursor;
    }
    let history = run.truncate_metrics(step)?;

    let lpips = if cfg.losses.perceptual_weight > 0.0 {
        let (Some(vgg), Some(heads)) = (&cfg.losses.lpips_vgg, &cfg.losses.lpips_heads) else {
            bail!("losses.perceptual_weight > 0 needs losses.lpips_vgg and losses.lpips_heads");
        };
        Some(Lpips::load(vgg, heads)?.to(device))
    } else {
        None
    };
    // The discriminator (its heads' init is a function of the seed, like the model's).
    let mut gan = if cfg.gan.disc_weight > 0.0 {
        let path = cfg
            .gan
            .backbone
            .as_ref()
            .context("gan.backbone is not set")?;
        seed_torch_for(cfg.train.seed, 1, Stream::Init);
        let disc = Discriminator::new(path, cfg.gan.backbone_heads, device)?;
        let opt = AdamW::new(&disc.params(), cfg.adamw());
        let mut g = GanState {
            disc,
            opt,
            lecam: LeCam::default(),
        };
        let src = match (&resume_dir, stage) {
            (Some(d), _) => Some(d.clone()),
            (None, Stage::Decoder) => cfg
                .decoder_ft
                .from
                .as_ref()
                .map(|f| resolve_from(f, false))
                .transpose()?
                .filter(|d| d.join("disc.safetensors").exists()),
            _ => None,
        };
        if let Some(dir) = src {
            g.load(&dir, device, resume_dir.is_some())?;
            if let Some(st) = &state {
                g.lecam = st.lecam;
            }
            tracing::info!("discriminator heads from {}", dir.display());
        }
        Some(g)
    } else {
        None
    };
    let targets: Vec<String> = if aux_on {
        cfg.aux
            .iter()
            .filter(|a| a.loss != AuxLoss::Caption)
            .map(|a| a.target.clone())
            .collect()
    } else {
        Vec::new()
    };
    let loader = Loader::start(
        LoaderConfig {
            dir: cfg.data.shards.clone(),
            batch_size: cfg.data.batch_size,
            seed: cfg.train.seed,
            rank: ranks.rank,
            world: ranks.world,
            targets,
            prefetch: cfg.data.prefetch,
            decode_threads: match (cfg.data.decode_threads, device) {
                (0, tch::Device::Cpu) => 1,
                (0, _) => 4,
                (n, _) => n,
            },
            text: aux_on && cfg.aux.iter().any(|a| a.loss == AuxLoss::Caption),
        },
        cursor,
    )?;
    let sched = cfg.schedule(ranks.world, cfg.optim.warmup_steps);
    let autocast_kind = cfg.train.precision.autocast_kind(device);
    let total = cfg.train.steps;
    let stop_at = opts.max_steps.map_or(total, |m| (step + m).min(total));
    let start_step = step;
    tracing::info!(
        "{}: {} parameters train, steps {start_step}..{stop_at} of {total}, batch {}, {} on {:?}",
        stage.name(),
        params.iter().map(|(_, t)| t.numel()).sum::<usize>(),
        cfg.data.batch_size,
        if aux_on {
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

    let curve_title = format!(
        "{} ({})",
        run.root.file_name().map_or_else(
            || run.root.display().to_string(),
            |n| n.to_string_lossy().into_owned()
        ),
        stage.name()
    );
    let mut curves: Vec<(String, Vec<(u64, f64)>)> = Vec::new();
    for v in &history {
        push_curves(&mut curves, v);
    }
    let mut last_checkpoint = resume_dir.clone();
    let mut final_losses = Vec::new();
    let (mut t_window, mut wait_window, mut steps_window) = (Instant::now(), 0f64, 0u64);
    let (t_all, mut wait_all) = (Instant::now(), 0f64);
    while step < stop_at {
        let t0 = Instant::now();
        let batch = loader.next_batch()?;
        let waited = t0.elapsed().as_secs_f64();
        wait_window += waited;
        wait_all += waited;
        let x = batch.images.to_device(device);
        let b = x.size()[0];

        // Masking (spec §3, §5.4): the ratio per step, the positions per sample.
        let seed = cfg.train.seed;
        let rows = ranks.global_rows(b as usize);
        let ratio = match stage {
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
        // Forward and losses, under autocast when the precision asks for it (backward runs
        // outside, as in PyTorch).
        let (
            xhat,
            PixelObjective {
                loss,
                terms,
                mut gan_log,
            },
        ) = autocast(device, autocast_kind, || -> anyhow::Result<_> {
            let z = match stage {
                Stage::Tokenizer => model.ae.encode(&x, mask.as_ref()),
                Stage::Decoder => tch::no_grad(|| model.ae.encode(&x, mask.as_ref())),
            };
            let xhat = model.ae.decode(&z);
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
            );
            if aux_on {
                let mask = mask.as_ref().context("stage 1 always masks")?;
                for (a, ac) in model.aux.iter().zip(&cfg.aux) {
                    let target = if a.loss == AuxLoss::Caption {
                        caption_target(&batch.text_ids, a.decoder.out_dim).to_device(device)
                    } else {
                        target_of(&batch, &ac.target, n_tokens, grid)?.to_device(device)
                    };
                    let l = a.loss(&a.forward(&z, grid), &target, mask);
                    objective.loss += &l * ac.weight;
                    objective.terms.push((format!("aux_{}", a.name), l));
                }
            }
            Ok((xhat, objective))
        })?;
        let values: Vec<(String, f64)> = terms
            .iter()
            .map(|(k, t)| (k.clone(), f64::try_from(t.detach()).unwrap_or(f64::NAN)))
            .collect();
        let loss_v = f64::try_from(loss.detach()).unwrap_or(f64::NAN);
        if !loss_v.is_finite() {
            let bad: Vec<String> = values
                .iter()
                .filter(|(_, v)| !v.is_finite())
                .map(|(k, v)| format!("{k} = {v}"))
                .collect();
            bail!(
                "the loss is {loss_v} at step {step} ({}); stopping before the update. The last \
                 good state is {}",
                bad.join(", "),
                last_checkpoint
                    .as_ref()
                    .map_or("the initialisation (no step folder yet)".into(), |p| p
                        .display()
                        .to_string())
            );
        }

        // Update.
        opt.zero_grad();
        loss.backward();
        fault::point("train_backward");
        let grad_norm = if cfg.optim.grad_clip > 0.0 {
            opt.clip_grad_norm(cfg.optim.grad_clip)
        } else {
            opt.clip_grad_norm(f64::INFINITY)
        };
        if !grad_norm.is_finite() {
            bail!(
                "the gradient norm is {grad_norm} at step {step} (loss {loss_v}); stopping before \
                 the update. The last good state is {}",
                last_checkpoint
                    .as_ref()
                    .map_or("the initialisation".into(), |p| p.display().to_string())
            );
        }
        let lr = sched.lr(step);
        opt.step(lr);
        ema.update(&params);
        if let Some(g) = gan.as_mut().filter(|_| cfg.gan.active(global_step)) {
            let d = autocast(device, autocast_kind, || {
                discriminator_loss(
                    &g.disc,
                    &x,
                    &xhat,
                    &cfg.gan,
                    global_step,
                    &mut g.lecam,
                    &mut aug_rng,
                    &mut crop_rng,
                )
            });
            g.opt.zero_grad();
            d.loss.backward();
            let dn = g.opt.clip_grad_norm(if cfg.optim.grad_clip > 0.0 {
                cfg.optim.grad_clip
            } else {
                f64::INFINITY
            });
            g.opt.step(lr);
            gan_log.extend([
                (
                    "d_loss".to_string(),
                    f64::try_from(&d.loss).unwrap_or(f64::NAN),
                ),
                ("d_hinge".to_string(), d.hinge),
                ("d_lecam".to_string(), d.lecam),
                ("d_cr".to_string(), d.cr),
                ("d_grad_norm".to_string(), dn),
                ("logits_real".to_string(), d.logits_real),
                ("logits_fake".to_string(), d.logits_fake),
            ]);
        }
        fault::point("train_updated");
        step += 1;
        steps_window += 1;
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
        let log_now = step % cfg.train.log_every.max(1) == 0 || step == stop_at;
        if log_now {
            let dt = t_window.elapsed().as_secs_f64().max(1e-9);
            let it_s = steps_window as f64 / dt;
            record["it_per_sec"] = serde_json::json!(it_s);
            record["images_per_sec"] = serde_json::json!(it_s * b as f64);
            record["data_wait"] = serde_json::json!(wait_window / dt);
            let eta = (total - step) as f64 / it_s.max(1e-9);
            tracing::info!(
                "{} step {step}/{total}  loss {loss_v:.4}  {}  lr {lr:.2e}  {it_s:.2} it/s  ETA {}",
                stage.name(),
                values
                    .iter()
                    .map(|(k, v)| format!("{k} {v:.4}"))
                    .collect::<Vec<_>>()
                    .join("  "),
                fmt_eta(eta)
            );
            run.append_metrics(&record)?;
            push_curves(&mut curves, &record);
            write_loss_curves(&curve_title, &curves, &run.root.join("loss.png"))?;
            t_window = Instant::now();
            wait_window = 0.0;
            steps_window = 0;
        }
        let sample_now =
            (cfg.train.sample_every > 0 && step % cfg.train.sample_every == 0) || step == stop_at;
        if sample_now {
            let n = (cfg.train.grid_images as i64).min(b);
            let xs = x.narrow(0, 0, n);
            let recon = tch::no_grad(|| model.ae.reconstruct(&xs));
            let (o, r) = (tensor_to_rgb8(&xs), tensor_to_rgb8(&recon));
            let o: Vec<&[u8]> = o.iter().map(|v| v.as_slice()).collect();
            let r: Vec<&[u8]> = r.iter().map(|v| v.as_slice()).collect();
            write_grid(&o, &r, res as usize, n as usize, &run.sample_path(step))?;
        }
        if step % cfg.train.checkpoint_every.max(1) == 0 || step == stop_at {
            let st = TrainState {
                stage: stage.name().into(),
                step,
                cursor,
                world: ranks.world,
                config_sha256: config_sha.clone(),
                lecam: gan.as_ref().map(|g| g.lecam).unwrap_or_default(),
            };
            let dir = run.checkpoint(step, cfg.train.keep_checkpoints, |tmp| {
                model.save(tmp, None)?;
                let e: HashMap<&str, &Tensor> =
                    ema.tensors().iter().map(|(k, t)| (k.as_str(), t)).collect();
                model.save(&tmp.join("ema"), Some(&e))?;
                fault::point("train_checkpoint_filling");
                crate::maetok::model::write_safetensors_atomic(
                    &opt.state_tensors(),
                    &tmp.join("optimizer.safetensors"),
                )?;
                if let Some(g) = &gan {
                    g.save(tmp)?;
                }
                maetok_pipeline::atomic::write(
                    &tmp.join("state.json"),
                    serde_json::to_string_pretty(&st)?.as_bytes(),
                )?;
                Ok(())
            })?;
            fault::point("train_checkpoint_written");
            tracing::info!("checkpoint {}", dir.display());
            last_checkpoint = Some(dir);
        }
    }
    let elapsed = t_all.elapsed().as_secs_f64().max(1e-9);
    Ok(Summary {
        start_step,
        end_step: step,
        last_checkpoint,
        final_losses,
        images_per_sec: (step - start_step) as f64 * cfg.data.batch_size as f64 / elapsed,
        data_wait_fraction: wait_all / elapsed,
    })
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

fn push_curves(curves: &mut Vec<(String, Vec<(u64, f64)>)>, v: &serde_json::Value) {
    let Some(step) = v["step"].as_u64() else {
        return;
    };
    let Some(obj) = v.as_object() else { return };
    for (k, val) in obj {
        if k == "loss" || k == "rec" || k == "lpips" || k.starts_with("aux_") {
            let Some(x) = val.as_f64() else { continue };
            match curves.iter_mut().find(|(n, _)| n == k) {
                Some((_, s)) => s.push((step, x)),
                None => curves.push((k.clone(), vec![(step, x)])),
            }
        }
    }
}

fn fmt_eta(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

/// The discriminator, its optimiser and LeCAM's EMAs.
struct GanState {
    disc: Discriminator,
    opt: AdamW,
    lecam: LeCam,
}

impl GanState {
    fn save(&self, dir: &Path) -> anyhow::Result<()> {
        crate::maetok::model::write_safetensors_atomic(
            &self.disc.state_dict(),
            &dir.join("disc.safetensors"),
        )?;
        crate::maetok::model::write_safetensors_atomic(
            &self.opt.state_tensors(),
            &dir.join("disc_optimizer.safetensors"),
        )?;
        Ok(())
    }

    /// Heads from `dir` (a step folder, or the folder above an `ema/`); with `optimizer`,
    /// the discriminator's optimiser state too.
    fn load(&mut self, dir: &Path, device: tch::Device, optimizer: bool) -> anyhow::Result<()> {
        let read = |p: PathBuf| -> anyhow::Result<HashMap<String, Tensor>> {
            Ok(Tensor::read_safetensors(&p)
                .with_context(|| format!("reading {}", p.display()))?
                .into_iter()
                .map(|(k, t)| (k, t.to_device(device)))
                .collect())
        };
        self.disc
            .load_state(read(dir.join("disc.safetensors"))?)
            .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
        if optimizer {
            let st = read_state(dir)?;
            self.opt
                .load_state(st.step, read(dir.join("disc_optimizer.safetensors"))?)
                .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
        }
        Ok(())
    }
}
