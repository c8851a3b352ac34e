//! `maetok preprocess`: flags, config file and Slurm environment → a preprocess job.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use maetok_pipeline::image::png::PngCompression;
use maetok_pipeline::preprocess::config::{Duplicates, TeacherConfig};
use maetok_pipeline::preprocess::teach::Storage;
use maetok_pipeline::preprocess::{self, PreprocessConfig, RunOptions, Summary};
use maetok_pipeline::source::FolderLayout;

/// Flags override the config file, which overrides the defaults.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Input: a folder (ImageFolder or flat), a .tar, or a brace pattern like `data-{000000..000099}.tar`.
    #[arg(long = "input", value_name = "SRC", num_args = 1..)]
    inputs: Vec<String>,
    /// Output folder for shards, manifest.json and rejects.jsonl.
    #[arg(long, value_name = "DIR")]
    output: PathBuf,
    /// TOML file with preprocess settings (keys as in configs/preprocess-imagenet.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// View size in pixels, a multiple of 16 [default: 256].
    #[arg(long)]
    resolution: Option<usize>,
    /// Views per image: 1 = ADM center crop, 2 = + its flip, more = + random-resized crops [default: 1].
    #[arg(long)]
    views: Option<u16>,
    /// Seed of the random-resized crops [default: 0].
    #[arg(long)]
    seed: Option<u64>,
    /// Rows per shard [default: 2048].
    #[arg(long)]
    shard_rows: Option<usize>,
    /// Rows per Parquet row group [default: 256].
    #[arg(long)]
    row_group_rows: Option<usize>,
    /// Skip the HOG targets.
    #[arg(long)]
    no_hog: bool,
    /// Apply EXIF orientation (the reference pipelines ignore it).
    #[arg(long)]
    exif_orientation: bool,
    /// Decompression-bomb limit in pixels, checked before decoding; it bounds the memory one
    /// decode thread can be made to take [default: 40000000].
    #[arg(long)]
    max_pixels: Option<u64>,
    /// Skip images whose short side is below this [default: 8].
    #[arg(long)]
    min_side: Option<usize>,
    /// PNG effort for the stored views [default: fast].
    #[arg(long, value_enum)]
    png_compression: Option<PngCompression>,
    /// zstd level of the Parquet pages, 1-22 [default: 3].
    #[arg(long)]
    zstd_level: Option<i32>,
    /// A key an earlier sample has: skip (count, warn), error, or suffix (`key~2`)
    /// [default: skip].
    #[arg(long, value_enum)]
    duplicates: Option<Duplicates>,
    /// Classes of WebDataset `.cls` labels: a label at or above it is stored null and counted.
    #[arg(long)]
    num_classes: Option<usize>,
    /// How to read folders [default: auto].
    #[arg(long, value_enum)]
    layout: Option<FolderLayout>,
    /// `filename,synset` CSV labelling a flat folder (ImageNet val).
    #[arg(long, value_name = "FILE")]
    labels_csv: Option<PathBuf>,
    /// JSON caption field, repeatable, tried in order [default: caption, top_caption, TEXT].
    #[arg(long = "caption-field", value_name = "NAME")]
    caption_fields: Vec<String>,
    /// CLIP BPE vocabulary (bpe_simple_vocab_16e6.txt.gz or tokenizer.json): tokenize
    /// captions into `text_ids`.
    #[arg(long, value_name = "FILE")]
    caption_bpe: Option<PathBuf>,
    /// A ViT teacher as NAME=WEIGHTS (dinov2, siglip, clip; repeatable); adds to or replaces
    /// the config's `[[teachers]]` entry of that name.
    #[arg(long = "teacher", value_name = "NAME=WEIGHTS")]
    teachers: Vec<String>,
    /// Device of every teacher: cpu, cuda, cuda:N.
    #[arg(long, value_name = "DEVICE")]
    teacher_device: Option<String>,
    /// Storage of every teacher's features.
    #[arg(long, value_enum)]
    teacher_storage: Option<Storage>,
    /// Views per teacher forward pass.
    #[arg(long, value_name = "N")]
    teacher_batch: Option<usize>,
    /// Decode threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// This node's rank in a multi-node job [default: $SLURM_PROCID or 0].
    #[arg(long)]
    node_rank: Option<usize>,
    /// Number of nodes [default: $SLURM_NTASKS or 1].
    #[arg(long)]
    num_nodes: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
}

fn env_usize(name: &str) -> anyhow::Result<Option<usize>> {
    match std::env::var(name) {
        Ok(v) => Ok(Some(v.trim().parse().with_context(|| {
            format!("environment variable {name}={v:?} is not a number")
        })?)),
        Err(_) => Ok(None),
    }
}

/// Resolves defaults ← config file ← flags.
fn resolve(a: &Args) -> anyhow::Result<PreprocessConfig> {
    let mut c = match &a.config {
        Some(p) => PreprocessConfig::from_file(p)?,
        None => PreprocessConfig::default(),
    };
    if !a.inputs.is_empty() {
        c.inputs = a.inputs.clone();
    }
    macro_rules! set {
        ($($field:ident),*) => { $( if let Some(v) = a.$field.clone() { c.$field = v; } )* };
    }
    set!(
        resolution,
        views,
        seed,
        shard_rows,
        row_group_rows,
        max_pixels,
        min_side,
        png_compression,
        zstd_level,
        layout,
        duplicates
    );
    if a.num_classes.is_some() {
        c.num_classes = a.num_classes;
    }
    if a.labels_csv.is_some() {
        c.labels_csv = a.labels_csv.clone();
    }
    if a.caption_bpe.is_some() {
        c.caption_bpe = a.caption_bpe.clone();
    }
    if !a.caption_fields.is_empty() {
        c.caption_fields = a.caption_fields.clone();
    }
    c.hog &= !a.no_hog;
    c.exif_orientation |= a.exif_orientation;
    for t in &a.teachers {
        let (name, weights) = t.split_once('=').with_context(|| {
            format!("--teacher {t:?}: expected NAME=WEIGHTS, e.g. dinov2=model.safetensors")
        })?;
        let entry = TeacherConfig {
            name: name.to_string(),
            weights: PathBuf::from(weights),
            model_config: None,
            device: "cpu".into(),
            dtype: None,
            storage: Storage::F16,
            batch_size: 32,
            patch_size: 16,
            normalization: None,
        };
        match c.teachers.iter_mut().find(|x| x.name == name) {
            Some(x) => x.weights = entry.weights,
            None => c.teachers.push(entry),
        }
    }
    for t in &mut c.teachers {
        if let Some(d) = &a.teacher_device {
            t.device = d.clone();
        }
        if let Some(s) = a.teacher_storage {
            t.storage = s;
        }
        if let Some(b) = a.teacher_batch {
            t.batch_size = b;
        }
    }
    Ok(c)
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let cfg = resolve(&a)?;
    let node_rank = match a.node_rank {
        Some(r) => r,
        None => env_usize("SLURM_PROCID")?.unwrap_or(0),
    };
    let num_nodes = match a.num_nodes {
        Some(n) => n,
        None => env_usize("SLURM_NTASKS")?.unwrap_or(1),
    };
    let opts = RunOptions {
        output: a.output.clone(),
        threads: a.threads,
        node_rank,
        num_nodes,
        show_progress: !a.no_progress,
    };
    tracing::info!(inputs = ?cfg.inputs, output = %a.output.display(), resolution = cfg.resolution, views = cfg.views, node_rank, num_nodes, "preprocess");
    let summary = preprocess::run(&cfg, &opts)
        .with_context(|| format!("preprocess into {}", a.output.display()))?;
    print!("{}", render(&summary));
    let node = (num_nodes > 1).then_some(node_rank);
    let path = a
        .output
        .join(maetok_pipeline::shard::summary_file_name(node));
    let json = serde_json::to_vec_pretty(&summary)?;
    maetok_nn::atomic::write(&path, &json)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(ExitCode::SUCCESS)
}

/// The human summary printed at the end of a job.
pub fn render(s: &Summary) -> String {
    let st = &s.stats;
    let mut out = String::new();
    let mb = |b: u64| b as f64 / (1 << 20) as f64;
    out += &format!("preprocess summary: {}\n", s.output.display());
    if s.already_complete {
        out += "  (already complete; nothing to do)\n";
    }
    out += &format!(
        "  images      {} ({} rows in {} shards)\n",
        st.images, st.rows, s.shards
    );
    if s.resumed_images > 0 && !s.already_complete {
        out += &format!(
            "  resumed     after {} images done by an earlier run\n",
            s.resumed_images
        );
    }
    let rejects: Vec<String> = st.rejects.iter().map(|(k, v)| format!("{k} {v}")).collect();
    out += &format!(
        "  rejects     {}{}\n",
        st.total_rejects(),
        if rejects.is_empty() {
            String::new()
        } else {
            format!(" ({})", rejects.join(", "))
        }
    );
    let conv: Vec<String> = st
        .converted
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    out += &format!(
        "  converted   {}\n",
        if conv.is_empty() {
            "none".into()
        } else {
            conv.join(", ")
        }
    );
    out += &format!("  no caption  {}\n", st.missing_captions);
    out += &format!(
        "  bytes       {:.1} MiB read, {:.1} MiB written\n",
        mb(st.input_bytes),
        mb(st.output_bytes)
    );
    out += &format!(
        "  throughput  {:.1} images/s over {:.1} s on {} threads ({:.1} ms CPU per image)\n",
        s.images_per_s,
        s.elapsed_s,
        s.threads,
        1e3 * s.cpu_s / (st.images - s.resumed_images).max(1) as f64
    );
    if let Some(rss) = s.peak_rss_bytes {
        out += &format!("  peak RSS    {:.0} MiB\n", mb(rss));
    }
    out
}
