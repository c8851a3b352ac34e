//! `maetok teacher features`: run one teacher over the ADM center crops of a source and write
//! the features to a safetensors file (for inspection and parity checks against timm / HF).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use maetok_nn::device::{parse_device, parse_kind};
use maetok_pipeline::image::Rgb8;
use maetok_pipeline::preprocess::teach::batch_tensor;
use maetok_teachers::{build, Normalization, TeacherSpec};
use tch::Tensor;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Features (N, tokens, dim) of the ADM-cropped images of a source, in sorted key order.
    Features(FeaturesArgs),
}

#[derive(clap::Args, Debug)]
pub struct FeaturesArgs {
    /// Canonical teacher name: hog, dinov2, siglip, clip.
    #[arg(long)]
    teacher: String,
    /// Weight file (.safetensors, timm / HF / OpenCLIP layout, detected from the keys).
    #[arg(long, value_name = "PATH")]
    weights: Option<PathBuf>,
    /// Model config (HF config.json, timm config.json, open_clip_config.json) [default: the
    /// config next to the weights].
    #[arg(long, value_name = "FILE")]
    model_config: Option<PathBuf>,
    /// A folder or WebDataset tar(s).
    #[arg(long, value_name = "SRC")]
    input: String,
    /// Output .safetensors file (tensor `features`, keys in the metadata as `keys`).
    #[arg(long, value_name = "FILE.safetensors")]
    output: PathBuf,
    /// cpu, cuda, cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// f32 or bf16 [default: bf16 on GPU, f32 on CPU].
    #[arg(long)]
    dtype: Option<String>,
    /// Square input size in pixels.
    #[arg(long, default_value_t = 256)]
    resolution: i64,
    /// Patch size the model runs at (kernels resampled at load when it differs).
    #[arg(long, default_value_t = 16)]
    patch_size: i64,
    /// imagenet (the reference), clip or siglip.
    #[arg(long)]
    normalization: Option<String>,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Features(a) => features(a),
    }
}

fn features(a: FeaturesArgs) -> anyhow::Result<ExitCode> {
    if a.output.extension().and_then(|e| e.to_str()) != Some("safetensors") {
        bail!(
            "--output must end in .safetensors (got {})",
            a.output.display()
        );
    }
    let device = parse_device(&a.device)
        .map_err(anyhow::Error::msg)
        .context("--device")?;
    let kind = parse_kind(a.dtype.as_deref(), device)
        .map_err(anyhow::Error::msg)
        .context("--dtype")?;
    let normalization = match &a.normalization {
        Some(n) => Some(Normalization::parse(n).with_context(|| {
            format!("--normalization `{n}`: expected imagenet, clip or siglip")
        })?),
        None => None,
    };
    let spec = TeacherSpec {
        model_config: a.model_config.clone(),
        device,
        kind,
        resolution: (a.resolution, a.resolution),
        patch_size: a.patch_size,
        normalization,
        ..TeacherSpec::new(&a.teacher, a.weights.clone())
    };
    let teacher = build(&spec).with_context(|| format!("loading teacher `{}`", a.teacher))?;

    let loaded = super::images::load(&a.input, a.resolution as usize)?;
    let (keys, views, rejected) = (loaded.keys, loaded.images, loaded.skipped);
    let started = std::time::Instant::now();
    let mut outs = Vec::new();
    let refs: Vec<&Rgb8> = views.iter().collect();
    for chunk in refs.chunks(a.batch_size.max(1)) {
        outs.push(teacher.features(&batch_tensor(chunk))?);
    }
    let feats = Tensor::cat(&outs, 0).contiguous();
    let secs = started.elapsed().as_secs_f64();
    super::images::write_keyed(
        &a.output,
        "features",
        &feats,
        &keys,
        ("teacher", teacher.describe()),
    )?;
    let s = feats.size();
    println!(
        "{}: {} images -> {:?} f32 in {:.2} s ({:.1} images/s), {rejected} skipped; wrote {}",
        a.teacher,
        keys.len(),
        s,
        secs,
        keys.len() as f64 / secs.max(1e-9),
        a.output.display()
    );
    Ok(ExitCode::SUCCESS)
}
