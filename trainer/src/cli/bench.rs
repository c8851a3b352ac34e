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
    /// The committed fixtures' networks on the CPU and on a device: their relative
    /// differences (the GPU run's correctness check).
    DeviceParity(super::device_parity::DeviceParityArgs),
    /// The FID Inception alone on random uint8 images: features per second (input handling
    /// included), and the FID of two random feature sets of `--fid-samples` × 2048.
    Inception(InceptionArgs),
    /// Writes a ViT teacher of RANDOM weights in a released shape (the file says so), for
    /// timing `maetok teacher features` and preprocessing where the values do not matter.
    RandomTeacher(RandomTeacherArgs),
}

#[derive(clap::Args, Debug)]
pub struct RandomTeacherArgs {
    /// dinov2-l (ViT-L/14, 518 px), siglip-so400m (so400m/14, 384 px), clip-l (ViT-L/14,
    /// 224 px), or tiny (64 wide, 2 blocks: for dry runs).
    #[arg(long)]
    shape: String,
    /// Folder for model.safetensors and config.json.
    #[arg(long, value_name = "DIR")]
    output: PathBuf,
    #[arg(long, default_value_t = 0)]
    seed: i64,
}

#[derive(clap::Args, Debug)]
pub struct InceptionArgs {
    /// Weights (`scripts/convert_inception.py`); random ones when not given (as fast).
    #[arg(long)]
    inception: Option<PathBuf>,
    #[arg(long, default_value_t = 200)]
    images: usize,
    #[arg(long, default_value_t = 50)]
    batch: usize,
    /// Side of the input images (resized to 299 as pytorch-fid does).
    #[arg(long, default_value_t = 256)]
    side: usize,
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Rows of each feature set for the FID timing (0: skip it).
    #[arg(long, default_value_t = 50_000)]
    fid_samples: usize,
    /// Only write a random-weight Inception file here (marked as random) and stop.
    #[arg(long, value_name = "FILE")]
    write_random: Option<PathBuf>,
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
        Command::Inception(a) => inception(a),
        Command::DeviceParity(a) => super::device_parity::run(a),
        Command::RandomTeacher(a) => random_teacher(a),
    }
}

fn random_teacher(a: RandomTeacherArgs) -> anyhow::Result<ExitCode> {
    use maetok_teachers::random::{write_random_vit, RandomVit};
    use maetok_teachers::Family;
    // (family, width, depth, heads, patch, native grid, MLP width) of the released towers.
    let (family, width, depth, heads, patch, grid, hidden) = match a.shape.as_str() {
        "dinov2-l" => (Family::Dinov2, 1024, 24, 16, 14, 37, None),
        "siglip-so400m" => (Family::Siglip, 1152, 27, 16, 14, 27, Some(4304)),
        "clip-l" => (Family::Clip, 1024, 24, 16, 14, 16, None),
        "tiny" => (Family::Dinov2, 64, 2, 2, 14, 16, None),
        s => anyhow::bail!("--shape {s:?}: one of dinov2-l, siglip-so400m, clip-l, tiny"),
    };
    let v = RandomVit {
        family,
        width,
        depth,
        heads,
        patch,
        grid,
        hidden,
        seed: a.seed,
    };
    write_random_vit(&a.output, &v)?;
    println!(
        "wrote a {} of RANDOM weights ({width} wide, {depth} blocks, {heads} heads, patch {patch}) to {}",
        a.shape,
        a.output.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn inception(a: InceptionArgs) -> anyhow::Result<ExitCode> {
    use maetok_teachers::inception::Inception;
    use tch::{Kind, Tensor};
    if let Some(p) = &a.write_random {
        maetok_teachers::random::write_random_inception(p, 0)?;
        println!("wrote random FID Inception weights to {}", p.display());
        return Ok(ExitCode::SUCCESS);
    }
    let device = maetok_nn::device::parse_device(&a.device)?;
    let mut net = match &a.inception {
        Some(p) => Inception::load(p)?,
        None => {
            let t = maetok_teachers::random::inception_state(0)
                .into_iter()
                .collect();
            Inception::from_weights(maetok_nn::Weights::from_tensors(
                std::path::Path::new("<random>"),
                "",
                t,
            ))?
        }
    };
    net.to(device);
    tch::manual_seed(0);
    let side = a.side as i64;
    let batch = a.batch.max(1) as i64;
    let images = Tensor::randint(256, [batch, side, side, 3], (Kind::Uint8, tch::Device::Cpu));
    let run = || {
        let f = tch::no_grad(|| net.forward(&Inception::prepare_u8_nhwc(&images, device)));
        // One read makes a GPU finish the batch.
        let _ = f64::try_from(f.pool.sum(Kind::Float).to_device(tch::Device::Cpu));
    };
    run(); // warm-up (kernel selection, allocator)
    let steps = a.images.div_ceil(a.batch.max(1)).max(1);
    let t = Instant::now();
    for _ in 0..steps {
        run();
    }
    let features_per_s = (steps as i64 * batch) as f64 / t.elapsed().as_secs_f64();
    let mut out = serde_json::json!({
        "side": "maetok", "what": "inception", "device": a.device, "batch": batch,
        "input_side": side, "threads": tch::get_num_threads(),
        "images_per_s": features_per_s,
    });
    if a.fid_samples > 0 {
        let n = a.fid_samples as i64;
        let f1 = Tensor::randn([n, 2048], (Kind::Float, tch::Device::Cpu));
        let f2 = Tensor::randn([n, 2048], (Kind::Float, tch::Device::Cpu)) * 1.1 + 0.05;
        let t = Instant::now();
        let s1 = maetok_eval::fid::Statistics::from_features(&f1)?;
        let s2 = maetok_eval::fid::Statistics::from_features(&f2)?;
        let stats_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let fid = s1.frechet_distance(&s2)?;
        out["fid_samples"] = n.into();
        out["fid_statistics_s"] = stats_s.into();
        out["fid_distance_s"] = t.elapsed().as_secs_f64().into();
        out["fid"] = fid.into();
    }
    println!("{out}");
    Ok(ExitCode::SUCCESS)
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
