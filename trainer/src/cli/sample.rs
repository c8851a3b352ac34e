//! `maetok sample`: class-conditional samples from a SiT checkpoint (spec §7.4), optionally
//! decoded through the tokenizer.
//!
//! The work is cut into chunks of `--batch` samples, each written atomically to
//! `OUT/.chunks/` as it is done; a killed run started again with the same arguments skips
//! the chunks it has, and other arguments are refused. Only when every chunk is there are
//! `latents.safetensors`, `samples.npz` and `grid.png` assembled, each under a temporary
//! name and then renamed, so no file that looks complete is ever partial. Under torchrun
//! or srun each rank samples chunks `k ≡ rank (mod world)` and rank 0 assembles.
//!
//! Sample i's noise, class (unless given) and SDE noise are keyed by (seed, i), so the
//! output does not depend on `--batch`, the world size or a resume.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use maetok_diffusion::{Guidance, PathKind, SamplerKind, SamplerSpec};
use maetok_eval::npz::ImageBatchWriter;
use maetok_models::denoiser::Denoiser;
use maetok_models::maetok::AeModel;
use maetok_trainer::sample::{decode_latents, keyed_normal, sample_latents, Request};
use maetok_trainer::train::rng::{sample_rng, Stream};
use tch::{Device, Kind, Tensor};

#[derive(clap::Args, Debug)]
pub struct SampleArgs {
    /// A SiT checkpoint folder (model.safetensors + config.json), a run's step folder (its
    /// EMA weights unless --raw), or a run folder (its latest step).
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Output folder: latents.safetensors, and with --tokenizer samples.npz and grid.png.
    #[arg(long, value_name = "DIR")]
    output: PathBuf,
    /// The MAETok checkpoint folder whose latents the SiT models: decodes the samples.
    #[arg(long, value_name = "DIR")]
    tokenizer: Option<PathBuf>,
    /// Number of samples (ignored with --noise, whose N is the file's).
    #[arg(long, default_value_t = 16)]
    num: usize,
    /// Classes, cycled over the samples (e.g. 0,5,9).
    #[arg(long, value_delimiter = ',', conflicts_with = "class_balanced")]
    labels: Vec<i64>,
    /// Sample i gets class i mod num_classes (50 per class for 50,000 ImageNet samples).
    #[arg(long)]
    class_balanced: bool,
    /// A sampling preset (configs/sample-*.toml: sampler, steps, cfg_scale, cfg_interval);
    /// the flags below take precedence over it.
    #[arg(long, value_name = "FILE")]
    preset: Option<PathBuf>,
    /// euler, heun or euler-maruyama [default: euler-maruyama].
    #[arg(long)]
    sampler: Option<String>,
    /// [default: 250]
    #[arg(long)]
    steps: Option<usize>,
    /// Classifier-free guidance scale (1: none) [default: 1].
    #[arg(long)]
    cfg_scale: Option<f64>,
    /// Guidance applies while low ≤ t ≤ high (t = 1 is noise) [default: 0,1].
    #[arg(long, value_delimiter = ',')]
    cfg_interval: Option<Vec<f64>>,
    /// Latent statistics `z = x·std + mean` for decoding [default: the tokenizer's
    /// vq_mean/vq_std].
    #[arg(long, value_delimiter = ',')]
    latent_stats: Option<Vec<f64>>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// A safetensors file with `noise` (N, tokens, channels) f32 and `labels` (N,) i64:
    /// x at t = 1 and the classes (no random draws for them).
    #[arg(long, value_name = "FILE")]
    noise: Option<PathBuf>,
    /// Samples per chunk (one sampler batch; CFG doubles the network's batch).
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// cpu, cuda, cuda:N (cuda under torchrun: this rank's GPU).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// bf16 (autocast) or fp32 [default: bf16 on CUDA, fp32 on the CPU].
    #[arg(long)]
    dtype: Option<String>,
    /// Use a step folder's raw weights instead of its EMA.
    #[arg(long)]
    raw: bool,
}

/// Everything the samples depend on: a resumed output must have been made by the same.
#[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq)]
struct Identity {
    model_sha256: String,
    spec: serde_json::Value,
    num: usize,
    labels: Vec<i64>,
    seed: u64,
    noise_sha256: Option<String>,
    batch: usize,
    dtype: String,
    tokenizer_sha256: Option<String>,
    latent_stats: (f64, f64),
}

/// `configs/sample-*.toml`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Preset {
    sampler: Option<String>,
    steps: Option<usize>,
    cfg_scale: Option<f64>,
    cfg_interval: Option<Vec<f64>>,
}

/// The sampler: the flags, else the preset, else the defaults (the paper's SDE, 250 steps,
/// no guidance).
fn spec(a: &SampleArgs, path: PathKind) -> anyhow::Result<SamplerSpec> {
    let p: Preset = match &a.preset {
        Some(f) => {
            let text =
                std::fs::read_to_string(f).with_context(|| format!("--preset {}", f.display()))?;
            toml::from_str(&text).with_context(|| format!("--preset {}", f.display()))?
        }
        None => Preset::default(),
    };
    let sampler = a
        .sampler
        .clone()
        .or(p.sampler)
        .unwrap_or("euler-maruyama".into());
    let interval = a
        .cfg_interval
        .clone()
        .or(p.cfg_interval)
        .unwrap_or(vec![0.0, 1.0]);
    anyhow::ensure!(
        interval.len() == 2,
        "the guidance interval takes two values, LOW,HIGH (got {interval:?})"
    );
    let kind = SamplerKind::parse(&sampler)
        .with_context(|| format!("sampler {sampler:?}: one of euler, heun, euler-maruyama"))?;
    let s = SamplerSpec {
        kind,
        steps: a.steps.or(p.steps).unwrap_or(250),
        guidance: Guidance {
            scale: a.cfg_scale.or(p.cfg_scale).unwrap_or(1.0),
            low: interval[0],
            high: interval[1],
        },
        path,
    };
    s.validate().map_err(anyhow::Error::msg)?;
    Ok(s)
}

fn chunk_path(out: &Path, k: usize) -> PathBuf {
    out.join(".chunks")
        .join(format!("chunk-{k:06}.safetensors"))
}

pub fn run(a: SampleArgs) -> anyhow::Result<ExitCode> {
    let launch = maetok_dist::Launch::from_env()?;
    let model_dir = maetok_trainer::train::sit::resolve_model(&a.model, !a.raw)?;
    let mut sit =
        Denoiser::load(&model_dir).with_context(|| format!("--model {}", a.model.display()))?;
    let device = maetok_trainer::train::job::rank_device(&a.device, &launch)?;
    let cfg = sit.config();
    let path = PathKind::parse(cfg.path_type()).unwrap_or_else(|| {
        tracing::warn!(
            "{}: path_type {:?} is not linear or cosine; sampling on the linear path",
            model_dir.display(),
            cfg.path_type()
        );
        PathKind::Linear
    });
    let spec = spec(&a, path)?;
    if spec.guidance.scale > 1.0 && cfg.null_label().is_none() {
        bail!(
            "CFG scale {}: {} was built without label dropout (class_dropout_prob 0), so it \
             has no null class to guide against",
            spec.guidance.scale,
            model_dir.display()
        );
    }
    let autocast = match a.dtype.as_deref() {
        Some("fp32" | "f32") => None,
        Some("bf16") => Some(Kind::BFloat16),
        None if device == Device::Cpu => None,
        None => Some(Kind::BFloat16),
        Some(d) => bail!("--dtype {d:?}: bf16 or fp32"),
    };
    sit.to(device, Kind::Float);
    let (tokens, channels) = cfg.latent_shape();
    let shape = [tokens, channels];

    // The noise and the classes: from --noise, or keyed by (seed, sample index).
    let (noise, labels, noise_sha) = match &a.noise {
        Some(f) => {
            let t: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(f)
                .with_context(|| format!("--noise {}", f.display()))?
                .into_iter()
                .collect();
            let (Some(n), Some(l)) = (t.get("noise"), t.get("labels")) else {
                bail!(
                    "--noise {}: needs tensors `noise` and `labels`",
                    f.display()
                );
            };
            anyhow::ensure!(
                n.size().len() == 3 && n.size()[1..] == shape && l.size() == [n.size()[0]],
                "--noise {}: noise {:?} and labels {:?}; the model wants (N, {}, {}) and (N,)",
                f.display(),
                n.size(),
                l.size(),
                shape[0],
                shape[1]
            );
            let sha = maetok_nn::weights::file_sha256(f)?;
            (
                Some(n.to_kind(Kind::Float)),
                Vec::<i64>::try_from(l.to_kind(Kind::Int64))?,
                Some(sha),
            )
        }
        None => {
            let labels: Vec<i64> = (0..a.num as u64)
                .map(|i| {
                    if a.class_balanced {
                        i as i64 % cfg.num_classes()
                    } else if !a.labels.is_empty() {
                        a.labels[i as usize % a.labels.len()]
                    } else {
                        sample_rng(a.seed, 0, Stream::Sample, i).below(cfg.num_classes() as u64)
                            as i64
                    }
                })
                .collect();
            (None, labels, None)
        }
    };
    let n = labels.len();
    if let Some(bad) = labels.iter().find(|&&l| l < 0 || l >= cfg.num_classes()) {
        bail!(
            "class {bad} is outside the model's {} classes",
            cfg.num_classes()
        );
    }
    anyhow::ensure!(
        n > 0 && a.batch > 0,
        "nothing to sample (--num and --batch ≥ 1)"
    );

    let tokenizer = match &a.tokenizer {
        Some(dir) => {
            let mut ae =
                AeModel::load(dir).with_context(|| format!("--tokenizer {}", dir.display()))?;
            ae.to(device, Kind::Float);
            Some((dir.clone(), ae))
        }
        None => None,
    };
    if let Some(s) = &a.latent_stats {
        anyhow::ensure!(
            s.len() == 2,
            "--latent-stats takes two values, MEAN,STD (got {s:?})"
        );
    }
    let stats = match (&a.latent_stats, &tokenizer) {
        (Some(s), _) => (s[0], s[1]),
        (None, Some((_, ae))) => (
            ae.config.vq_mean.unwrap_or(0.0),
            ae.config.vq_std.unwrap_or(1.0),
        ),
        (None, None) => (0.0, 1.0),
    };
    let identity = Identity {
        model_sha256: maetok_nn::weights::file_sha256(&model_dir.join("model.safetensors"))?,
        spec: serde_json::to_value(spec)?,
        num: n,
        labels: labels.clone(),
        seed: a.seed,
        noise_sha256: noise_sha,
        batch: a.batch,
        dtype: format!("{autocast:?}"),
        tokenizer_sha256: match &tokenizer {
            Some((dir, _)) => Some(maetok_nn::weights::file_sha256(
                &dir.join("model.safetensors"),
            )?),
            None => None,
        },
        latent_stats: stats,
    };
    if prepare_output(&a.output, &identity, launch.rank == 0)? {
        tracing::info!("{}: these samples are complete already", a.output.display());
        return Ok(ExitCode::SUCCESS);
    }

    let chunks = n.div_ceil(a.batch);
    let mine: Vec<usize> = (0..chunks)
        .filter(|k| k % launch.world == launch.rank)
        .collect();
    let todo: Vec<usize> = mine
        .iter()
        .copied()
        .filter(|&k| !chunk_path(&a.output, k).exists())
        .collect();
    if todo.len() < mine.len() {
        tracing::info!(
            "{}: {} of this process's {} chunks are done already",
            a.output.display(),
            mine.len() - todo.len(),
            mine.len()
        );
    }
    let evals = spec.kind.evaluations(spec.steps);
    tracing::info!(
        "sampling {n} × ({}, {}) latents: {:?}, {} steps ({evals} network calls per sample{}), \
         {chunks} chunks of {} on {device:?}{}",
        shape[0],
        shape[1],
        spec.kind,
        spec.steps,
        if spec.guidance.scale > 1.0 {
            format!(
                ", CFG {} on t ∈ [{}, {}]",
                spec.guidance.scale, spec.guidance.low, spec.guidance.high
            )
        } else {
            String::new()
        },
        a.batch,
        if launch.is_distributed() {
            format!(", rank {} of {}", launch.rank, launch.world)
        } else {
            String::new()
        }
    );
    let started = std::time::Instant::now();
    let mut done = 0usize;
    for &k in &todo {
        let (lo, hi) = (k * a.batch, ((k + 1) * a.batch).min(n));
        let rows: Vec<u64> = (lo as u64..hi as u64).collect();
        let x1 = match &noise {
            Some(t) => t.narrow(0, lo as i64, (hi - lo) as i64),
            None => keyed_normal(a.seed, 0, Stream::Sample, &rows, &shape),
        };
        let y = Tensor::from_slice(&labels[lo..hi]);
        let x = sample_latents(&Request {
            sit: &sit,
            spec: &spec,
            noise: &x1,
            labels: &y,
            seed: a.seed,
            first: lo as u64,
            autocast,
        })?;
        let mut tensors = vec![
            ("latents".to_string(), x.shallow_clone()),
            ("labels".to_string(), y),
        ];
        if let Some((_, ae)) = &tokenizer {
            let imgs = decode_latents(ae, &x, stats)?;
            let side = ae.shape.image_size();
            let px: Vec<u8> = imgs.concat();
            tensors.push((
                "pixels".into(),
                Tensor::from_slice(&px).reshape([(hi - lo) as i64, side, side, 3]),
            ));
        }
        maetok_nn::weights::write_safetensors_atomic(&tensors, &chunk_path(&a.output, k))?;
        maetok_pipeline::preprocess::fault::point("sample_chunk_written");
        done += hi - lo;
        let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
        let left: usize = todo
            .iter()
            .filter(|&&j| j > k)
            .map(|&j| ((j + 1) * a.batch).min(n) - j * a.batch)
            .sum();
        tracing::info!(
            "chunk {}/{chunks}: {done} samples, {rate:.2} samples/s, ETA {}",
            k + 1,
            maetok_trainer::run::meter::fmt_eta(left as f64 / rate.max(1e-9))
        );
    }
    if launch.is_distributed() {
        let mut job = maetok_trainer::train::job::Job::join(
            &launch,
            &Default::default(),
            launch.world,
            &maetok_trainer::run::sha256_hex(serde_json::to_string(&identity)?.as_bytes()),
            device,
        )?;
        job.comm.barrier()?;
    }
    if launch.rank == 0 {
        assemble(&a.output, chunks, n, tokenizer.as_ref().map(|(_, ae)| ae))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Creates `out` with its `request.json`, or checks that an existing one was made by the
/// same request (so its chunks are this request's). True when that request is complete.
fn prepare_output(out: &Path, identity: &Identity, root: bool) -> anyhow::Result<bool> {
    let req = out.join("request.json");
    if req.exists() {
        let old: Identity = serde_json::from_str(&std::fs::read_to_string(&req)?)
            .with_context(|| format!("{}: not a sample request", req.display()))?;
        if &old != identity {
            bail!(
                "{} holds samples of another request (model, sampler, classes, seed, batch, \
                 dtype or tokenizer differ); choose a new --output or delete it",
                out.display()
            );
        }
        return Ok(out.join("latents.safetensors").exists());
    } else if root {
        if out.join("latents.safetensors").exists() {
            bail!(
                "{} holds samples already; choose a new --output",
                out.display()
            );
        }
        std::fs::create_dir_all(out.join(".chunks"))?;
        maetok_nn::atomic::write(&req, &serde_json::to_vec_pretty(identity)?)?;
    } else {
        std::fs::create_dir_all(out.join(".chunks"))?;
    }
    Ok(false)
}

/// Joins the chunks into `latents.safetensors`, and with a tokenizer `samples.npz` and
/// `grid.png`; then removes the chunks.
fn assemble(out: &Path, chunks: usize, n: usize, ae: Option<&AeModel>) -> anyhow::Result<()> {
    let read = |k: usize| -> anyhow::Result<std::collections::HashMap<String, Tensor>> {
        let p = chunk_path(out, k);
        Ok(Tensor::read_safetensors(&p)
            .with_context(|| format!("reading {}", p.display()))?
            .into_iter()
            .collect())
    };
    let mut latents = Vec::with_capacity(chunks);
    let mut labels = Vec::with_capacity(chunks);
    for k in 0..chunks {
        let c = read(k)?;
        latents.push(c["latents"].shallow_clone());
        labels.push(c["labels"].shallow_clone());
    }
    let (latents, labels) = (Tensor::cat(&latents, 0), Tensor::cat(&labels, 0));
    anyhow::ensure!(
        latents.size()[0] as usize == n,
        "the chunks hold {} samples, not {n}",
        latents.size()[0]
    );
    maetok_nn::weights::write_safetensors_atomic(
        &[
            ("latents".into(), latents),
            ("labels".into(), labels.shallow_clone()),
        ],
        &out.join("latents.safetensors"),
    )?;
    if let Some(ae) = ae {
        let side = ae.shape.image_size() as usize;
        let tmp = out.join(".samples.npz.tmp");
        let mut w = ImageBatchWriter::create(&tmp, n, side, side)?;
        let mut grid: Vec<Vec<u8>> = Vec::new();
        for k in 0..chunks {
            let px = read(k)?
                .remove("pixels")
                .context("a chunk without pixels")?;
            let bytes = Vec::<u8>::try_from(px.reshape([-1]))?;
            for img in bytes.chunks(side * side * 3) {
                w.push(img)?;
                if grid.len() < 64 {
                    grid.push(img.to_vec());
                }
            }
        }
        w.finish()?;
        maetok_nn::atomic::commit(&tmp, &out.join("samples.npz"))?;
        let labels = Vec::<i64>::try_from(&labels)?;
        let per_row = 8;
        let names: Vec<String> = labels
            .chunks(per_row)
            .take(grid.len().div_ceil(per_row))
            .map(|l| format!("classes {}–{}", l[0], l[l.len() - 1]))
            .collect();
        let rows: Vec<(&str, Vec<&[u8]>)> = grid
            .chunks(per_row)
            .zip(&names)
            .map(|(g, name)| (name.as_str(), g.iter().map(|v| v.as_slice()).collect()))
            .collect();
        maetok_trainer::viz::write_rows(&rows, side, &out.join("grid.png"))?;
    }
    std::fs::remove_dir_all(out.join(".chunks")).ok();
    tracing::info!(
        "wrote {n} samples to {}{}",
        out.join("latents.safetensors").display(),
        if ae.is_some() {
            format!(", {} and grid.png", out.join("samples.npz").display())
        } else {
            String::new()
        }
    );
    Ok(())
}
