//! `maetok bench`: measurements that are not tests (docs/benchmarks.md).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use maetok_trainer::data::{DataCursor, Loader, LoaderConfig};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// The shard loader alone: decoded batches per second (what a training step can consume).
    Loader(LoaderArgs),
    /// The gradient all-reduce alone, as a training step runs it (flat buckets, mean over
    /// the ranks), on the job the launch variables describe (run one process per rank).
    Allreduce(AllreduceArgs),
    /// Writes a latent folder of standard-normal latents with cycling labels, in the layout
    /// `maetok encode` writes: input for SiT timings where the values do not matter.
    Latents(LatentsArgs),
}

#[derive(clap::Args, Debug)]
pub struct LatentsArgs {
    #[arg(long)]
    output: PathBuf,
    #[arg(long, default_value_t = 2048)]
    images: usize,
    #[arg(long, default_value_t = 128)]
    tokens: usize,
    #[arg(long, default_value_t = 32)]
    channels: usize,
    #[arg(long, default_value_t = 1000)]
    classes: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(clap::Args, Debug)]
pub struct AllreduceArgs {
    /// f32 values reduced per step (the trained parameter count).
    #[arg(long)]
    params: usize,
    /// Tensors the parameters are split into (a model's parameter tensors).
    #[arg(long, default_value_t = 100)]
    tensors: usize,
    #[arg(long, default_value_t = 10)]
    steps: usize,
    #[arg(long, default_value_t = 25.0)]
    bucket_mb: f64,
    #[arg(long, default_value_t = 120.0)]
    timeout_s: f64,
    /// `cpu` (TCP through rank 0), `nccl` (needs CUDA and libnccl.so on the library path) or
    /// `auto` (NCCL on CUDA when it loads).
    #[arg(long, default_value = "cpu")]
    backend: String,
    /// Where the gradients live: cpu, cuda, cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
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
    /// Measure rank `rank` of a job of `world` ranks: it reads every world-th sample of the
    /// global batch `batch_size`, so batch_size / world per step.
    #[arg(long, default_value_t = 1)]
    world: usize,
    #[arg(long, default_value_t = 0)]
    rank: usize,
}

pub fn run(c: Command) -> anyhow::Result<ExitCode> {
    match c {
        Command::Loader(a) => loader(a),
        Command::Allreduce(a) => allreduce(a),
        Command::Latents(a) => latents(a),
    }
}

fn latents(a: LatentsArgs) -> anyhow::Result<ExitCode> {
    use maetok_nn::rng::SplitMix;
    let mut w = maetok_pipeline::shard::latent::LatentWriter::create(
        &a.output,
        [a.tokens, a.channels],
        4096,
        serde_json::json!({ "bench": "standard-normal latents", "seed": a.seed }),
    )?;
    let mut rng = SplitMix::new(a.seed);
    let n = a.tokens * a.channels;
    for i in 0..a.images {
        let mut draw = || (0..n).map(|_| rng.normal() as f32).collect::<Vec<f32>>();
        let (z, zf) = (draw(), draw());
        w.push(format!("bench/{i:08}"), Some((i % a.classes) as i32), z, zf)?;
    }
    let m = w.finish()?;
    println!(
        "wrote {} random latents of {} × {} to {} ({} shards)",
        a.images,
        a.tokens,
        a.channels,
        a.output.display(),
        m.shards.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn loader(a: LoaderArgs) -> anyhow::Result<ExitCode> {
    let loader = Loader::start(
        LoaderConfig {
            dir: a.shards.clone(),
            batch_size: a.batch_size / a.world.max(1),
            seed: 0,
            rank: a.rank,
            world: a.world.max(1),
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
            "world": a.world,
            "rank": a.rank,
            "targets": a.targets,
            "decode_threads": a.decode_threads,
            "batches_per_sec": a.batches as f64 / secs,
            "images_per_sec_this_rank": (a.batches * a.batch_size / a.world.max(1)) as f64 / secs,
        })
    );
    Ok(ExitCode::SUCCESS)
}

fn allreduce(a: AllreduceArgs) -> anyhow::Result<ExitCode> {
    use maetok_dist::grads::average_grads;
    let launch = maetok_dist::Launch::from_env()?;
    let timeout = std::time::Duration::from_secs_f64(a.timeout_s);
    let device = maetok_nn::device::parse_device(&a.device).map_err(anyhow::Error::msg)?;
    // A named backend runs even at world size 1 (the collective path on one device).
    let cuda = match device {
        tch::Device::Cuda(d) => Some(d),
        _ => None,
    };
    let mut comm = maetok_dist::connect(&a.backend, &launch, "bench-allreduce", timeout, cuda)?;
    let per = (a.params / a.tensors.max(1)).max(1) as i64;
    let params: Vec<tch::Tensor> = (0..a.tensors.max(1))
        .map(|_| tch::Tensor::zeros([per], (tch::Kind::Float, device)).set_requires_grad(true))
        .collect();
    for p in &params {
        (p * 1.0).sum(tch::Kind::Float).backward();
    }
    let bucket = (a.bucket_mb * (1 << 20) as f64) as usize;
    average_grads(comm.as_mut(), &params, bucket)?; // warm-up: connections, allocations
    let t = Instant::now();
    for _ in 0..a.steps {
        average_grads(comm.as_mut(), &params, bucket)?;
    }
    if let tch::Device::Cuda(d) = device {
        tch::Cuda::synchronize(d as i64);
    }
    let secs = t.elapsed().as_secs_f64() / a.steps as f64;
    if launch.rank == 0 {
        println!(
            "{}",
            serde_json::json!({
                "backend": comm.backend(),
                "device": a.device,
                "world": launch.world,
                "params": per as usize * params.len(),
                "tensors": params.len(),
                "bucket_mb": a.bucket_mb,
                "seconds_per_step": secs,
                "gbytes_per_sec_per_rank": (per as usize * params.len() * 4) as f64 / secs / 1e9,
            })
        );
    }
    Ok(ExitCode::SUCCESS)
}
