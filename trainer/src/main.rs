//! `maetok`: the command-line tool of the maetok pipeline (ARCHITECTURE §1). Each
//! subcommand is one stage that reads what the previous one wrote to disk.

mod cli;

use std::io::IsTerminal;

use clap::{Parser, Subcommand};

/// MAETok data and training pipeline.
#[derive(Parser, Debug)]
#[command(name = "maetok", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Log filter (tracing `EnvFilter` syntax, e.g. `info`, `debug`, `maetok_pipeline=debug`);
    /// default `info`, and `warn` on ranks other than 0 of a distributed job. (`--log` also
    /// works, except under torchrun, whose parser takes it for its own `--log-dir`.)
    #[arg(
        long = "log-level",
        visible_alias = "log",
        global = true,
        env = "MAETOK_LOG"
    )]
    log: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Raw images (folders, WebDataset tars) → Parquet shards with views and HOG targets.
    Preprocess(Box<cli::preprocess::Args>),
    /// Check, describe or combine shard folders.
    Shards {
        #[command(subcommand)]
        command: cli::shards::Command,
    },
    /// Run a teacher (DINOv2, SigLIP, CLIP, HOG) on images, for inspection and parity checks.
    Teacher {
        #[command(subcommand)]
        command: cli::teacher::Command,
    },
    /// Images (or a shard folder's views) → MAETok latents (.safetensors).
    Encode(cli::codec::EncodeArgs),
    /// Images (or a shard folder's views) → MAETok reconstructions, a side-by-side grid and PSNR/SSIM.
    Reconstruct(cli::codec::ReconstructArgs),
    /// Class-conditional samples from a SiT checkpoint, decoded through the tokenizer.
    Sample(Box<cli::sample::SampleArgs>),
    /// Metrics from files: `generation` (FID, sFID, IS, precision/recall), `tokenizer`
    /// (rFID, PSNR, SSIM), `latents` (linear probe, GMM modes).
    Eval {
        #[command(subcommand)]
        command: cli::eval::Command,
    },
    /// Train the tokenizer (`tokenizer`: stage 1, mask modeling; `decoder`: stage 2) or
    /// SiT on cached latents (`sit`).
    Train {
        #[command(subcommand)]
        command: cli::train::Command,
    },
    /// One logged metric of several runs on one picture (`--run NAME=RUN_DIR`, repeated).
    Plot(cli::plot::Args),
    /// Generate a small captioned dataset, preprocess it, and summarise the result.
    Demo(cli::demo::Args),
    /// Measurements (not tests): the shard loader's throughput.
    Bench {
        #[command(subcommand)]
        command: cli::bench::Command,
    },
    /// Show the libtorch build this binary uses (version, CUDA, threads).
    Env,
}

/// Keeps freed per-image buffers (decoded images, float planes: hundreds of KB each) in
/// the heap: by default glibc serves them with mmap and returns them to the kernel on free,
/// and the next image page-faults them back in (about a tenth of preprocessing time).
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning parameters; called before any threads.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

fn main() -> std::process::ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    // A job's other ranks repeat rank 0's log; they say only what goes wrong.
    let rank = maetok_dist::Launch::from_env().map_or(0, |l| l.rank);
    let level = cli
        .log
        .clone()
        .unwrap_or_else(|| if rank == 0 { "info" } else { "warn" }.into());
    let filter = tracing_subscriber::EnvFilter::try_new(&level).unwrap_or_else(|e| {
        eprintln!("warning: --log-level {level:?} is not a valid filter ({e}); using `info`");
        tracing_subscriber::EnvFilter::new("info")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    let result = dispatch(cli.command);
    match result {
        Ok(code) => code,
        Err(e) if rank > 0 => {
            eprintln!("error (rank {rank}): {e:#}");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs one subcommand (the demo runs `maetok eval` and `maetok sample` through it, as a
/// user types them).
fn dispatch(command: Command) -> anyhow::Result<std::process::ExitCode> {
    match command {
        Command::Preprocess(args) => cli::preprocess::run(*args),
        Command::Shards { command } => cli::shards::run(command),
        Command::Teacher { command } => cli::teacher::run(command),
        Command::Encode(args) => cli::codec::encode(args),
        Command::Reconstruct(args) => cli::codec::reconstruct(args),
        Command::Sample(args) => cli::sample::run(*args),
        Command::Eval { command } => cli::eval::run(command),
        Command::Train { command } => cli::train::run(command),
        Command::Demo(args) => cli::demo::run(args),
        Command::Bench { command } => cli::bench::run(command),
        Command::Env => cli::env::run(),
        Command::Plot(args) => cli::plot::run(args),
    }
}

/// Parses and runs `maetok ARGS…` (without the program name) in this process.
fn run_args<I, S>(args: I) -> anyhow::Result<std::process::ExitCode>
where
    I: IntoIterator<Item = S>,
    S: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::try_parse_from(
        std::iter::once("maetok".into()).chain(args.into_iter().map(Into::into)),
    )?;
    dispatch(cli.command)
}
