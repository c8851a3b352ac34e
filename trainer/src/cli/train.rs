//! `maetok train tokenizer|decoder|sit`: the two tokenizer stages (spec §5) and SiT on
//! cached latents (spec §7), each over a run folder.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use maetok_trainer::train::config::TrainConfig;
use maetok_trainer::train::tokenizer::{train, Stage, TrainOptions};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Stage 1: mask modeling with auxiliary HOG / DINOv2 / SigLIP decoders.
    Tokenizer(Args),
    /// Stage 2: fine-tune the pixel decoder of a stage-1 run (encoder frozen).
    Decoder(DecoderArgs),
    /// SiT on cached latents (`maetok encode --output DIR`).
    Sit(SitArgs),
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// TOML training config (see configs/).
    #[arg(long)]
    config: PathBuf,
    /// Run folder; an existing one is resumed from its latest step folder. (`--run` also
    /// works, except under torchrun, whose parser takes it for its own `--run-path`.)
    #[arg(long = "run-dir", visible_alias = "run")]
    run: PathBuf,
    /// Shard folder (overrides `data.shards`).
    #[arg(long)]
    shards: Option<PathBuf>,
    /// Device (overrides `train.device`): cpu, cuda, cuda:N.
    #[arg(long)]
    device: Option<String>,
    /// Stop after this many steps in this call (the schedule still spans `train.steps`).
    #[arg(long)]
    max_steps: Option<u64>,
    /// Check every shard's sha256 against the manifest before the first step (sizes are
    /// always checked).
    #[arg(long)]
    verify: bool,
}

#[derive(clap::Args, Debug)]
pub struct DecoderArgs {
    #[command(flatten)]
    common: Args,
    /// The stage-1 run folder (its latest step), a step folder, or an AEModel folder.
    #[arg(long)]
    from: Option<PathBuf>,
}

fn load(a: &Args) -> anyhow::Result<TrainConfig> {
    let mut cfg = TrainConfig::load(&a.config).map_err(anyhow::Error::msg)?;
    if let Some(s) = &a.shards {
        cfg.data.shards = s.clone();
    }
    if let Some(d) = &a.device {
        cfg.train.device = d.clone();
    }
    cfg.validate()
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.config.display()))?;
    Ok(cfg)
}

pub fn run(c: Command) -> anyhow::Result<ExitCode> {
    let (stage, args, from) = match c {
        Command::Tokenizer(a) => (Stage::Tokenizer, a, None),
        Command::Decoder(d) => (Stage::Decoder, d.common, d.from),
        Command::Sit(a) => return run_sit(a),
    };
    let mut config = load(&args)?;
    if stage == Stage::Decoder {
        // Stage 2 has no auxiliary decoders (spec §5.4); recording the source in the run's
        // config makes a resume need no --from.
        config.aux.clear();
        if let Some(f) = &from {
            config.decoder_ft.from =
                Some(std::fs::canonicalize(f).with_context(|| format!("--from {}", f.display()))?);
        } else if config.decoder_ft.from.is_none() {
            let saved = args.run.join("config.toml");
            if let Ok(old) = TrainConfig::load(&saved) {
                config.decoder_ft.from = old.decoder_ft.from;
            }
        }
    }
    let launch = maetok_dist::Launch::from_env()?;
    let root = launch.rank == 0;
    let summary = train(TrainOptions {
        stage,
        config,
        run_dir: args.run.clone(),
        max_steps: args.max_steps,
        verify_shards: args.verify,
        launch,
    })?;
    if root {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args, Debug)]
pub struct SitArgs {
    /// TOML SiT training config (see configs/sit-*.toml).
    #[arg(long)]
    config: PathBuf,
    /// Run folder; an existing one is resumed from its latest step folder.
    #[arg(long = "run-dir", visible_alias = "run")]
    run: PathBuf,
    /// Latent folder written by `maetok encode` (overrides `data.latents`).
    #[arg(long)]
    latents: Option<PathBuf>,
    /// Tokenizer checkpoint folder of those latents (overrides `data.tokenizer`).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Device (overrides `train.device`): cpu, cuda, cuda:N.
    #[arg(long)]
    device: Option<String>,
    /// Stop after this many steps in this call (the run still spans `train.steps`).
    #[arg(long)]
    max_steps: Option<u64>,
    /// Check every latent shard's sha256 against the manifest before the first step.
    #[arg(long)]
    verify: bool,
}

/// `maetok train sit`.
pub fn run_sit(a: SitArgs) -> anyhow::Result<ExitCode> {
    use maetok_trainer::train::sit::{train, SitTrainConfig, SitTrainOptions};
    let text = std::fs::read_to_string(&a.config)
        .with_context(|| format!("reading {}", a.config.display()))?;
    let mut config = SitTrainConfig::parse_unchecked(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.config.display()))?;
    if let Some(l) = &a.latents {
        config.data.latents = l.clone();
    }
    if let Some(t) = &a.tokenizer {
        config.data.tokenizer = Some(t.clone());
    }
    if let Some(d) = &a.device {
        config.train.device = d.clone();
    }
    let config = SitTrainConfig::parse(&config.to_toml())
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.config.display()))?;
    let launch = maetok_dist::Launch::from_env()?;
    let root = launch.rank == 0;
    let summary = train(SitTrainOptions {
        config,
        run_dir: a.run.clone(),
        max_steps: a.max_steps,
        verify_shards: a.verify,
        launch,
    })?;
    if root {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    Ok(ExitCode::SUCCESS)
}
