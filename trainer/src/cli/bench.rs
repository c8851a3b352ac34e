//! `maetok bench`: measurements that are not tests (docs/benchmarks.md).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use maetok_trainer::data::{DataCursor, Loader, LoaderConfig};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// The shard loader alone: decoded batches per second (what a training step can consume).
    Loader(LoaderArgs),
}

#[derive(clap::Args, Debug)]
pub struct LoaderArgs {
    #[arg(long)]
    shards: PathBuf,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    #[arg(long, default_value_t = 50)]
    batches: usize,
    /// Target columns to read as well (repeatable), e.g. `hog`, `dinov2`.
    #[arg(long = "targets")]
    targets: Vec<String>,
    #[arg(long, default_value_t = 4)]
    prefetch: usize,
    /// PNG decode threads.
    #[arg(long, default_value_t = 1)]
    decode_threads: usize,
}

pub fn run(c: Command) -> anyhow::Result<ExitCode> {
    match c {
        Command::Loader(a) => loader(a),
    }
}

fn loader(a: LoaderArgs) -> anyhow::Result<ExitCode> {
    let loader = Loader::start(
        LoaderConfig {
            dir: a.shards.clone(),
            batch_size: a.batch_size,
            seed: 0,
            rank: 0,
            world: 1,
            targets: a.targets.clone(),
            prefetch: a.prefetch,
            text: false,
            verify: false,
            decode_threads: maetok_pipeline::threads::resolve(
                "--decode-threads",
                a.decode_threads.max(1),
            )
            .map_err(anyhow::Error::msg)?,
        },
        DataCursor::default(),
    )?;
    let first = loader.next_batch()?; // start-up (file opening) is not throughput
    let side = first.images.size()[2];
    let t = Instant::now();
    for _ in 0..a.batches {
        loader.next_batch()?;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "shards": a.shards.display().to_string(),
            "resolution": side,
            "batch_size": a.batch_size,
            "targets": a.targets,
            "decode_threads": a.decode_threads,
            "batches_per_sec": a.batches as f64 / secs,
            "images_per_sec": (a.batches * a.batch_size) as f64 / secs,
        })
    );
    Ok(ExitCode::SUCCESS)
}
