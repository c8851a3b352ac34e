//! Everything a tokenizer run needs before its first step: where the model comes from
//! (resumed, stage 1 for stage 2, or fresh), the optimiser and EMA state of a resumed run,
//! LPIPS, and the loader.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use maetok_pipeline::shard::reader::ShardFolder;
use tch::Device;

use super::Stage;
use crate::data::index::DataCursor;
use crate::data::loader::{Loader, LoaderConfig};
use crate::run::{RunDir, TrainState};
use crate::train::config::TrainConfig;
use crate::train::model::Tokenizer;
use crate::train::ranks::Ranks;
use crate::train::rng::{seed_torch_for, Stream};
use maetok_models::maetok::aux::AuxLoss;
use maetok_teachers::lpips::Lpips;

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
fn target_dims(folder: &ShardFolder) -> HashMap<String, i64> {
    let m = folder.manifest();
    let mut dims: HashMap<String, i64> = m
        .teachers
        .iter()
        .map(|t| (t.name.clone(), t.dim as i64))
        .collect();
    if let Some(t) = &m.text {
        dims.insert("text_ids".into(), t.vocab_size as i64);
    }
    dims
}

/// The model a run starts from, and the step folder it resumes (with its state).
pub struct Start {
    pub model: Tokenizer,
    pub resume: Option<(PathBuf, TrainState)>,
}

impl Start {
    /// Resumed from the run's latest step folder, started from stage 1, or fresh.
    pub fn open(
        run: &RunDir,
        cfg: &TrainConfig,
        stage: Stage,
        shards: &ShardFolder,
        dataset_sha: &str,
    ) -> anyhow::Result<Self> {
        let aux_on = stage == Stage::Tokenizer;
        let data = format!(
            "the shards at {} (data.shards, --shards)",
            cfg.data.shards.display()
        );
        if let Some((dir, st)) = run.resume_point(stage.name(), dataset_sha, &data)? {
            let model = Tokenizer::load(&dir, cfg, aux_on)?;
            return Ok(Self {
                model,
                resume: Some((dir, st)),
            });
        }
        let model = match stage {
            Stage::Tokenizer => {
                // The initial weights are a function of the seed (a run killed before its
                // first step folder restarts from the same ones).
                seed_torch_for(cfg.train.seed, 0, Stream::Init);
                Tokenizer::fresh(cfg, &target_dims(shards))?
            }
            Stage::Decoder => {
                let from = cfg
                    .decoder_ft
                    .from
                    .as_ref()
                    .context("`train decoder` starts from a stage-1 run: pass --from RUN")?;
                let src = resolve_from(from, cfg.decoder_ft.from_ema)?;
                tracing::info!("stage 2 starts from {}", src.display());
                Tokenizer::load(&src, cfg, false)?
            }
        };
        Ok(Self {
            model,
            resume: None,
        })
    }
}

/// LPIPS when `losses.perceptual_weight > 0`.
pub fn lpips(cfg: &TrainConfig, device: Device) -> anyhow::Result<Option<Lpips>> {
    if cfg.losses.perceptual_weight <= 0.0 {
        return Ok(None);
    }
    let (Some(vgg), Some(heads)) = (&cfg.losses.lpips_vgg, &cfg.losses.lpips_heads) else {
        bail!("losses.perceptual_weight > 0 needs losses.lpips_vgg and losses.lpips_heads");
    };
    let mut lpips = Lpips::load(vgg, heads)?;
    lpips.to(device);
    Ok(Some(lpips))
}

/// The loader of this rank, from `cursor` on: images, the stage-1 auxiliary targets and,
/// for a caption decoder, `text_ids`.
pub fn loader(
    cfg: &TrainConfig,
    stage: Stage,
    ranks: Ranks,
    device: Device,
    cursor: DataCursor,
    verify: bool,
) -> anyhow::Result<Loader> {
    let aux_on = stage == Stage::Tokenizer;
    let targets: Vec<String> = if aux_on {
        cfg.aux
            .iter()
            .filter(|a| a.loss != AuxLoss::Caption)
            .map(|a| a.target.clone())
            .collect()
    } else {
        Vec::new()
    };
    Loader::start(
        LoaderConfig {
            dir: cfg.data.shards.clone(),
            // `data.batch_size` is the global batch (`Job::join` checked that it splits).
            batch_size: cfg.data.batch_size / ranks.world,
            seed: cfg.train.seed,
            rank: ranks.rank,
            world: ranks.world,
            targets,
            prefetch: cfg.data.prefetch,
            decode_threads: match (cfg.data.decode_threads, device) {
                (0, Device::Cpu) => 1,
                (0, _) => 4,
                (n, _) => n,
            },
            text: aux_on && cfg.aux.iter().any(|a| a.loss == AuxLoss::Caption),
            verify,
        },
        cursor,
    )
}
