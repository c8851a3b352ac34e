//! `maetok encode` and `maetok reconstruct`: an MAETok checkpoint folder (`model.safetensors`
//! and `config.json`, the released layout) applied to images (folder, tars) or a shard
//! folder's stored views, in eval mode (no masking), at the checkpoint's resolution, on
//! any device (`--device`, bf16 by default on GPU).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use maetok_eval::reconstruction::{mean_colour, psnr, ssim_with_range};
use maetok_models::maetok::{images_to_input, AeModel};
use maetok_nn::device::{parse_device, parse_kind};
use maetok_pipeline::image::Rgb8;
use maetok_pipeline::preprocess::teach::batch_tensor;
use maetok_pipeline::shard::latent::LatentWriter;
use maetok_trainer::viz::{tensor_to_rgb8, write_grid};
use tch::{Device, Tensor};

#[derive(clap::Args, Debug)]
pub struct EncodeArgs {
    /// Checkpoint folder: model.safetensors + config.json.
    #[arg(long, value_name = "DIR")]
    checkpoint: PathBuf,
    /// A folder, WebDataset tar(s), or a shard folder (its view-0 images).
    #[arg(long, value_name = "SRC")]
    input: String,
    /// Output: a path ending in `.safetensors` (tensor `latents` (N, L, C) f32, keys in the
    /// metadata), or a folder of latent shards (latent and flipped-image latent per image,
    /// mean/std in its manifest; ARCHITECTURE §4).
    #[arg(long, value_name = "PATH")]
    output: PathBuf,
    /// Images per latent shard (folder output).
    #[arg(long, default_value_t = 4096)]
    shard_rows: usize,
    /// Write the measured latent mean and std into the checkpoint's config.json as
    /// `vq_mean` / `vq_std` (folder output; the SiT scripts normalise latents with them).
    #[arg(long)]
    write_stats: bool,
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// cpu, cuda, cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// f32 or bf16 [default: bf16 on GPU, f32 on CPU].
    #[arg(long)]
    dtype: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct ReconstructArgs {
    /// Checkpoint folder: model.safetensors + config.json.
    #[arg(long, value_name = "DIR")]
    checkpoint: PathBuf,
    /// A folder, WebDataset tar(s), or a shard folder (its view-0 images).
    #[arg(long, value_name = "SRC")]
    input: String,
    /// Output folder: `images/<key>.png`, `grid.png`, `metrics.json`.
    #[arg(long, value_name = "DIR")]
    output: PathBuf,
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Images in the side-by-side grid.
    #[arg(long, default_value_t = 8)]
    grid: usize,
    /// cpu, cuda, cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// f32 or bf16 [default: bf16 on GPU, f32 on CPU].
    #[arg(long)]
    dtype: Option<String>,
}

/// Writes the measured latent mean and std into the checkpoint's `config.json` as
/// `vq_mean` / `vq_std` (spec §6), atomically, keeping every other field.
fn write_stats(checkpoint: &Path, mean: Option<f64>, std: Option<f64>) -> anyhow::Result<()> {
    let (Some(mean), Some(std)) = (mean, std) else {
        anyhow::bail!("--write-stats: no latents were encoded, so there are no statistics");
    };
    anyhow::ensure!(
        mean.is_finite() && std.is_finite() && std > 0.0,
        "--write-stats: the measured statistics (mean {mean}, std {std}) are not usable"
    );
    let p = checkpoint.join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?,
    )
    .with_context(|| format!("{}: not JSON", p.display()))?;
    cfg["vq_mean"] = mean.into();
    cfg["vq_std"] = std.into();
    maetok_nn::atomic::write(&p, &serde_json::to_vec_pretty(&cfg)?)
        .with_context(|| format!("writing {}", p.display()))?;
    println!(
        "wrote vq_mean {mean:.6}, vq_std {std:.6} into {}",
        p.display()
    );
    Ok(())
}

fn load_model(dir: &Path, device: &str, dtype: Option<&str>) -> anyhow::Result<(AeModel, Device)> {
    let device = parse_device(device)
        .map_err(anyhow::Error::msg)
        .context("--device")?;
    let kind = parse_kind(dtype, device)
        .map_err(anyhow::Error::msg)
        .context("--dtype")?;
    let mut model = AeModel::load(dir)
        .with_context(|| format!("loading the MAETok checkpoint {}", dir.display()))?;
    model.to(device, kind);
    Ok((model, device))
}

/// uint8 views → (B, 3, H, W) in [-1, 1].
fn to_input(views: &[&Rgb8]) -> Tensor {
    images_to_input(&batch_tensor(views))
}

pub fn encode(a: EncodeArgs) -> anyhow::Result<ExitCode> {
    let (model, device) = load_model(&a.checkpoint, &a.device, a.dtype.as_deref())?;
    let res = model.config.image_size as usize;
    let to_file = a.output.extension().and_then(|e| e.to_str()) == Some("safetensors");
    anyhow::ensure!(
        !(to_file && a.write_stats),
        "--write-stats needs a folder output (its statistics are measured while writing latent shards)"
    );
    let started = std::time::Instant::now();
    let run = |x: &Tensor| {
        tch::no_grad(|| {
            model
                .encode(&x.to_device(device), None)
                .to_device(Device::Cpu)
        })
    };
    let source = serde_json::json!({
        "checkpoint": a.checkpoint.display().to_string(),
        "resolution": res,
        "input": a.input,
    });
    // What an unfinished folder must have been begun with to be continued (latents in
    // batches of another size could differ at rounding level).
    let folder_source = {
        let mut s = source.clone();
        s["checkpoint_sha256"] =
            maetok_nn::weights::file_sha256(&a.checkpoint.join("model.safetensors"))?.into();
        s["shard_rows"] = a.shard_rows.into();
        s["batch_size"] = a.batch_size.into();
        s["dtype"] = format!("{:?}", model.quant_conv.weight.kind()).into();
        s
    };
    let (n, skipped, what) = if to_file {
        let (mut keys, mut outs) = (Vec::new(), Vec::new());
        let skipped =
            super::images::for_each_chunk(&a.input, res, a.batch_size, Some("encode"), |c| {
                let refs: Vec<&Rgb8> = c.images.iter().collect();
                outs.push(run(&to_input(&refs)));
                keys.extend(c.keys);
                Ok(())
            })?;
        let latents = Tensor::cat(&outs, 0);
        let meta = serde_json::json!({ "checkpoint": source["checkpoint"], "resolution": res });
        super::images::write_keyed(&a.output, "latents", &latents, &keys, ("maetok", meta))?;
        (keys.len(), skipped, format!("{:?} f32", latents.size()))
    } else {
        let shape = [
            model.config.num_latent_tokens as usize,
            model.config.codebook_embed_dim as usize,
        ];
        let (mut w, done) =
            LatentWriter::create_or_resume(&a.output, shape, a.shard_rows, folder_source)?;
        if done > 0 {
            tracing::info!(
                "{}: continuing an unfinished encode; its shards hold {done} images",
                a.output.display()
            );
        }
        let mut left_to_skip = done as usize;
        let mut n = done as usize;
        let skipped =
            super::images::for_each_chunk(&a.input, res, a.batch_size, Some("encode"), |mut c| {
                // The images the kept shards hold, in input order.
                let skip = left_to_skip.min(c.keys.len());
                if skip > 0 {
                    left_to_skip -= skip;
                    c.keys.drain(..skip);
                    c.labels.drain(..skip);
                    c.images.drain(..skip);
                    if c.keys.is_empty() {
                        return Ok(());
                    }
                }
                let refs: Vec<&Rgb8> = c.images.iter().collect();
                let x = to_input(&refs);
                // Spec §6: the latent of the crop and of its horizontal flip.
                let (z, zf) = (run(&x), run(&x.flip([3])));
                let per = (shape[0] * shape[1]) as i64;
                for (i, (key, label)) in c.keys.into_iter().zip(c.labels).enumerate() {
                    let row = |t: &Tensor| -> Vec<f32> {
                        Vec::try_from(t.get(i as i64).reshape([per]).contiguous())
                            .unwrap_or_default()
                    };
                    w.push(key, label, row(&z), row(&zf))?;
                    maetok_pipeline::preprocess::fault::point("encode_pushed");
                    n += 1;
                }
                Ok(())
            })?;
        let m = w.finish()?;
        if a.write_stats {
            write_stats(&a.checkpoint, m.mean, m.std)?;
        }
        (
            n,
            skipped,
            format!(
                "{} shards, latent mean {:.4}, std {:.4}",
                m.shards.len(),
                m.mean.unwrap_or(f64::NAN),
                m.std.unwrap_or(f64::NAN)
            ),
        )
    };
    println!(
        "encoded {n} images ({skipped} skipped) in {:.1} s -> {what}: {}",
        started.elapsed().as_secs_f64(),
        a.output.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `maetok encode --checkpoint CKPT --input INPUT --output DIR` on the CPU with the default
/// batch and shard sizes (the demo's latents).
pub fn encode_folder(checkpoint: &Path, input: &Path, output: &Path) -> anyhow::Result<()> {
    encode(EncodeArgs {
        checkpoint: checkpoint.to_path_buf(),
        input: input.display().to_string(),
        output: output.to_path_buf(),
        shard_rows: 4096,
        write_stats: false,
        batch_size: 16,
        device: "cpu".into(),
        dtype: None,
    })
    .map(|_| ())
}

/// A key as one file name, one to one: `%` → `%25`, `/` → `%2F` (so `x/y` and `x__y` never
/// share a file, and no key reaches outside `images/`).
fn output_name(key: &str) -> String {
    let mut s = key.replace('%', "%25").replace('/', "%2F");
    if s.starts_with('.') {
        s = format!("%2E{}", &s[1..]);
    }
    s
}

/// What reconstructing an input gives: per-image rows (key, PSNR, SSIM, the mean-colour
/// baseline), the grid's images, and with an Inception the pool features of the originals
/// and of the reconstructions (for rFID).
pub struct Reconstructed {
    pub rows: Vec<serde_json::Value>,
    pub skipped: usize,
    pub res: usize,
    pub originals: Vec<Vec<u8>>,
    pub recons: Vec<Vec<u8>>,
    pub features: Option<(Tensor, Tensor)>,
}

impl Reconstructed {
    pub fn mean(&self, k: &str) -> f64 {
        self.rows
            .iter()
            .map(|r| r[k].as_f64().unwrap_or(0.0))
            .sum::<f64>()
            / self.rows.len().max(1) as f64
    }
}

/// Reconstructs every image of `input` through `checkpoint`, writing
/// `output/images/<key>.png`; SSIM with scikit-image's `data_range` = `ssim_range` (2.0:
/// the reference's quirk).
#[allow(clippy::too_many_arguments)]
pub fn reconstruct_all(
    checkpoint: &Path,
    input: &str,
    output: &Path,
    batch_size: usize,
    grid: usize,
    (device, dtype): (&str, Option<&str>),
    inception: Option<&maetok_eval::features::Extractor>,
    ssim_range: f64,
) -> anyhow::Result<Reconstructed> {
    let (model, device) = load_model(checkpoint, device, dtype)?;
    let res = model.config.image_size as usize;
    let out_images = output.join("images");
    std::fs::create_dir_all(&out_images)
        .with_context(|| format!("creating {}", out_images.display()))?;
    let mut rows = Vec::new();
    let mut written = std::collections::HashSet::new();
    let mut feats: (Vec<Tensor>, Vec<Tensor>) = (Vec::new(), Vec::new());
    // Only the grid's images are kept in memory.
    let (mut originals, mut recons): (Vec<Vec<u8>>, Vec<Vec<u8>>) = (Vec::new(), Vec::new());
    let skipped =
        super::images::for_each_chunk(input, res, batch_size, Some("reconstruct"), |c| {
            let refs: Vec<&Rgb8> = c.images.iter().collect();
            let y = tch::no_grad(|| model.reconstruct(&to_input(&refs).to_device(device)));
            let rec_u8 = tensor_to_rgb8(&y);
            if let Some(ext) = inception {
                let stack = |v: Vec<&[u8]>| {
                    let n = v.len() as i64;
                    Tensor::from_slice(&v.concat()).reshape([n, res as i64, res as i64, 3])
                };
                let o = stack(c.images.iter().map(|i| i.data.as_slice()).collect());
                let r = stack(rec_u8.iter().map(|v| v.as_slice()).collect());
                feats.0.push(ext.features_u8(&o).pool);
                feats.1.push(ext.features_u8(&r).pool);
            }
            for ((img, rec), key) in c.images.iter().zip(rec_u8).zip(&c.keys) {
                let name = output_name(key);
                if !written.insert(name.clone()) {
                    anyhow::bail!(
                    "two inputs have the key `{key}` (e.g. `a.jpg` and `a.png` in one folder); \
                     their reconstructions would share images/{name}.png: give each image its \
                     own name, or preprocess the input first (it skips duplicate keys)"
                );
                }
                let path = out_images.join(format!("{name}.png"));
                image::RgbImage::from_raw(res as u32, res as u32, rec.clone())
                    .context("image buffer")?
                    .save(&path)
                    .with_context(|| format!("writing {}", path.display()))?;
                rows.push(serde_json::json!({
                    "key": key,
                    "psnr": psnr(&img.data, &rec),
                    "ssim": ssim_with_range(&rec, &img.data, res, res, ssim_range),
                    "psnr_mean_colour": psnr(&img.data, &mean_colour(&img.data)),
                }));
                if recons.len() < grid.max(1) {
                    originals.push(img.data.clone());
                    recons.push(rec);
                }
            }
            Ok(())
        })?;
    let features = inception
        .filter(|_| !feats.0.is_empty())
        .map(|_| (Tensor::cat(&feats.0, 0), Tensor::cat(&feats.1, 0)));
    Ok(Reconstructed {
        rows,
        skipped,
        res,
        originals,
        recons,
        features,
    })
}

pub fn reconstruct(a: ReconstructArgs) -> anyhow::Result<ExitCode> {
    let r = reconstruct_all(
        &a.checkpoint,
        &a.input,
        &a.output,
        a.batch_size,
        a.grid,
        (&a.device, a.dtype.as_deref()),
        None,
        2.0,
    )?;
    let (rows, skipped, res) = (&r.rows, r.skipped, r.res);
    let mean = |k: &str| r.mean(k);
    let summary = serde_json::json!({
        "checkpoint": a.checkpoint.display().to_string(),
        "images": rows.len(),
        "skipped": skipped,
        "resolution": res,
        "psnr": mean("psnr"),
        "ssim": mean("ssim"),
        "psnr_mean_colour_baseline": mean("psnr_mean_colour"),
        "metric": "reference recipe: uint8 via clamp(127.5x+128), PSNR range 1, SSIM 7x7 uniform, data_range 2 (spec §8.1)",
        "per_image": rows,
    });
    maetok_nn::atomic::write(
        &a.output.join("metrics.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    let grid = a.output.join("grid.png");
    let originals: Vec<&[u8]> = r.originals.iter().map(|o| o.as_slice()).collect();
    let recons: Vec<&[u8]> = r.recons.iter().map(|r| r.as_slice()).collect();
    write_grid(&originals, &recons, res, a.grid, &grid)?;
    println!(
        "reconstructed {} images at {res} px: PSNR {:.2} dB, SSIM {:.4} (mean-colour baseline {:.2} dB); wrote {}, {}",
        rows.len(),
        mean("psnr"),
        mean("ssim"),
        mean("psnr_mean_colour"),
        grid.display(),
        a.output.join("metrics.json").display()
    );
    Ok(ExitCode::SUCCESS)
}
