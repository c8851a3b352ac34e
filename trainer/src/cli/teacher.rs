//! `maetok teacher features`: run one teacher over the ADM center crops of a source and write
//! the features to a safetensors file (for inspection and parity checks against timm / HF).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use maetok_pipeline::image::decode::{decode_rgb8, DecodeOptions};
use maetok_pipeline::image::views::adm_center_crop;
use maetok_pipeline::image::Rgb8;
use maetok_pipeline::preprocess::teach::batch_tensor;
use maetok_pipeline::source::{Dataset, Event, FolderLayout, SourceOptions};
use maetok_teachers::device::{parse_device, parse_kind};
use maetok_teachers::{build, Normalization, TeacherSpec};
use rayon::prelude::*;
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

    let options = SourceOptions {
        layout: FolderLayout::Auto,
        labels_csv: None,
        caption_fields: vec!["caption".into()],
    };
    let ds = Dataset::open(std::slice::from_ref(&a.input), options, 0, 1)
        .with_context(|| format!("reading {}", a.input))?;
    let mut samples = Vec::new();
    let mut rejected = 0usize;
    ds.for_each_event(Default::default(), |p| {
        match p.event {
            Some(Event::Sample(s)) => samples.push((s.key, s.bytes)),
            Some(Event::Reject(r)) => {
                tracing::warn!(key = %r.key, reason = %r.reason, "skipped");
                rejected += 1;
            }
            None => {}
        }
        true
    });
    samples.sort_by(|x, y| x.0.cmp(&y.0));
    let r = a.resolution as usize;
    let decoded: Vec<(String, Result<Rgb8, String>)> = samples
        .into_par_iter()
        .map(|(key, bytes)| {
            let img = decode_rgb8(&bytes, &DecodeOptions::default())
                .map(|d| adm_center_crop(&d.image, r).0)
                .map_err(|e| e.to_string());
            (key, img)
        })
        .collect();
    let mut keys = Vec::new();
    let mut views = Vec::new();
    for (key, img) in decoded {
        match img {
            Ok(v) => {
                keys.push(key);
                views.push(v);
            }
            Err(e) => {
                tracing::warn!(%key, error = %e, "skipped");
                rejected += 1;
            }
        }
    }
    if views.is_empty() {
        bail!("no decodable images in {}", a.input);
    }
    let started = std::time::Instant::now();
    let mut outs = Vec::new();
    let refs: Vec<&Rgb8> = views.iter().collect();
    for chunk in refs.chunks(a.batch_size.max(1)) {
        outs.push(teacher.features(&batch_tensor(chunk))?);
    }
    let feats = Tensor::cat(&outs, 0).contiguous();
    let secs = started.elapsed().as_secs_f64();
    write_features(&a.output, &feats, &keys, &teacher.describe())?;
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

/// One tensor `features` plus metadata `keys` (JSON array) and `teacher` (JSON), written to a
/// temporary name and renamed.
fn write_features(
    path: &std::path::Path,
    feats: &Tensor,
    keys: &[String],
    describe: &serde_json::Value,
) -> anyhow::Result<()> {
    let n = feats.numel();
    let mut data = vec![0f32; n];
    feats.view([-1]).copy_data(&mut data, n);
    let bytes: &[u8] = bytemuck::cast_slice(&data);
    let shape: Vec<usize> = feats.size().iter().map(|&d| d as usize).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape, bytes)?;
    let meta: HashMap<String, String> = [
        ("keys".to_string(), serde_json::to_string(keys)?),
        ("teacher".to_string(), describe.to_string()),
    ]
    .into();
    let tmp = maetok_pipeline::atomic::temp_path(path);
    safetensors::serialize_to_file([("features", view)], Some(meta), &tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    maetok_pipeline::atomic::commit(&tmp, path)
        .with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}
