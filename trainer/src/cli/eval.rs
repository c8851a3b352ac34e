//! `maetok eval`: numbers from files (spec §8). `generation`: FID, sFID, Inception Score and
//! precision/recall of a sample batch against a reference, with pytorch-fid's Inception
//! port; `tokenizer`: rFID, PSNR and SSIM of a tokenizer's reconstructions (docs/evaluation.md).
//! Each writes `OUT/report.json`, `OUT/report.md` and pictures.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use maetok_eval::features::{Extractor, FeatureSet, ImageSet};
use maetok_eval::fid::Statistics;
use maetok_eval::inception_score::inception_score;
use maetok_eval::npy;
use maetok_eval::precision_recall::precision_recall;
use serde_json::json;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// FID, sFID, Inception Score, precision/recall of samples against a reference.
    Generation(GenerationArgs),
    /// rFID, PSNR, SSIM of a tokenizer's reconstructions of images.
    Tokenizer(TokenizerArgs),
    /// Linear probing and GMM mode analysis of latent folders (`maetok encode --output`).
    Latents(LatentsArgs),
}

#[derive(clap::Args, Debug)]
pub struct LatentsArgs {
    /// A latent folder; repeat to compare several (the same PCA dimension for all).
    #[arg(long = "latents", value_name = "DIR", required = true)]
    latents: Vec<PathBuf>,
    #[arg(long, value_name = "DIR")]
    output: PathBuf,
    /// Mixture sizes.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16,32,64")]
    k: Vec<i64>,
    /// PCA keeps the components explaining this share of the variance (the most any folder
    /// needs, for all of them).
    #[arg(long, default_value_t = 0.9)]
    pca_ratio: f64,
    /// Share of each folder's rows held out (probe accuracy, GMM NLL).
    #[arg(long, default_value_t = 0.2)]
    held_out: f64,
    /// Use at most this many rows of each folder (0: all), chosen by the seeded shuffle.
    #[arg(long, default_value_t = 0)]
    max_rows: usize,
    /// GMM starts per K (the best is kept).
    #[arg(long, default_value_t = 1)]
    n_init: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(clap::Args, Debug)]
pub struct TokenizerArgs {
    /// The MAETok checkpoint folder (model.safetensors + config.json).
    #[arg(long, value_name = "DIR")]
    checkpoint: PathBuf,
    /// Images: a folder, WebDataset tar(s), or a shard folder (its view-0 ADM crops).
    #[arg(long, value_name = "SRC")]
    input: String,
    #[arg(long, value_name = "DIR")]
    output: PathBuf,
    /// The FID Inception weights, for rFID (originals against reconstructions); without it
    /// only PSNR and SSIM are computed.
    #[arg(long, value_name = "FILE")]
    inception: Option<PathBuf>,
    /// SSIM with `data_range = 1.0` (the standard SSIM of [0, 1] images) instead of the
    /// reference evaluation's 2.0.
    #[arg(long)]
    ssim_standard: bool,
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// cpu, cuda, cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// f32 or bf16 [default: bf16 on GPU, f32 on the CPU].
    #[arg(long)]
    dtype: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct GenerationArgs {
    /// The samples: an ADM `.npz` batch (`arr_0` uint8 N×H×W×3, what `maetok sample`
    /// writes) or a folder of images.
    #[arg(long, value_name = "FILE.npz|DIR")]
    samples: PathBuf,
    /// The reference: an ADM reference batch (`arr_0` images and/or `mu`, `sigma`, `mu_s`,
    /// `sigma_s` statistics), a pytorch-fid statistics `.npz` (`mu`, `sigma`), or a folder
    /// of images. Statistics in the file are used as they are; images give precision/recall.
    #[arg(long, value_name = "FILE.npz|DIR")]
    reference: PathBuf,
    #[arg(long, value_name = "DIR")]
    output: PathBuf,
    /// The FID Inception weights (`scripts/convert_inception.py` of pytorch-fid's
    /// pt_inception-2015-12-05-6726825d.pth).
    #[arg(long, value_name = "FILE")]
    inception: PathBuf,
    /// cpu, cuda, cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Images per Inception batch.
    #[arg(long, default_value_t = 50)]
    batch: usize,
    /// Where reference features are kept between runs [default: $XDG_CACHE_HOME/maetok/
    /// features or ~/.cache/maetok/features].
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
    /// Samples per Inception Score split (the ADM evaluator's 5,000: 10 splits for 50K).
    #[arg(long, default_value_t = maetok_eval::inception_score::SPLIT_SIZE)]
    split_size: usize,
}

pub fn run(c: Command) -> anyhow::Result<ExitCode> {
    match c {
        Command::Generation(a) => generation(a),
        Command::Tokenizer(a) => tokenizer(a),
        Command::Latents(a) => latents(a),
    }
}

/// One folder's rows: flattened crop latents (N, L·C) f32 and labels (if every row has one),
/// in a seeded shuffled order.
fn latent_rows(
    dir: &Path,
    seed: u64,
    max_rows: usize,
) -> anyhow::Result<(tch::Tensor, Option<tch::Tensor>)> {
    let folder = maetok_pipeline::shard::latent::LatentFolder::open(dir)
        .with_context(|| format!("--latents {}", dir.display()))?;
    let (mut values, mut labels, mut all_labelled) = (Vec::new(), Vec::new(), true);
    let mut n = 0i64;
    for b in folder.read_all() {
        let b = b?;
        for i in 0..b.len() {
            values.extend_from_slice(b.latent(i)?);
            match b.label(i)? {
                Some(l) => labels.push(l as i64),
                None => all_labelled = false,
            }
            n += 1;
        }
    }
    anyhow::ensure!(
        n >= 10,
        "--latents {}: {n} latents; the analyses need at least 10",
        dir.display()
    );
    let x = tch::Tensor::from_slice(&values).reshape([n, -1]);
    let mut order: Vec<i64> = (0..n).collect();
    let mut g = maetok_nn::rng::SplitMix::new(seed);
    for i in (1..order.len()).rev() {
        order.swap(i, g.below(i as u64 + 1) as usize);
    }
    if max_rows > 0 {
        order.truncate(max_rows);
    }
    let idx = tch::Tensor::from_slice(&order);
    let y = all_labelled.then(|| tch::Tensor::from_slice(&labels).index_select(0, &idx));
    Ok((x.index_select(0, &idx), y))
}

fn latents(a: LatentsArgs) -> anyhow::Result<ExitCode> {
    use maetok_eval::gmm::{DiagGmm, FitOptions};
    use maetok_eval::pca::{standardise, Pca};
    use maetok_eval::probe::{linear_probe, ProbeOptions};
    anyhow::ensure!(
        a.held_out > 0.0 && a.held_out < 1.0 && a.pca_ratio > 0.0 && a.pca_ratio <= 1.0,
        "--held-out must be in (0, 1) and --pca-ratio in (0, 1]"
    );
    std::fs::create_dir_all(&a.output)
        .with_context(|| format!("creating {}", a.output.display()))?;
    // Per folder: the split, its probe, its PCA.
    let mut sets = Vec::new();
    for dir in &a.latents {
        let (x, y) = latent_rows(dir, a.seed, a.max_rows)?;
        let n = x.size()[0];
        let test = ((n as f64 * a.held_out).round() as i64).clamp(1, n - 2);
        let (xtr, xte) = (x.narrow(0, 0, n - test), x.narrow(0, n - test, test));
        let probe = y.as_ref().map(|y| {
            linear_probe(
                &xtr,
                &y.narrow(0, 0, n - test),
                &xte,
                &y.narrow(0, n - test, test),
                &ProbeOptions::default(),
            )
        });
        tracing::info!(
            "{}: {n} latents of {} values{}",
            dir.display(),
            x.size()[1],
            probe.map_or(String::new(), |p| format!(
                ", probe accuracy {:.2} %",
                100.0 * p
            ))
        );
        let pca = Pca::fit(&xtr);
        sets.push((dir, xtr, xte, probe, pca));
    }
    let dims = sets
        .iter()
        .map(|s| s.4.dims_for(a.pca_ratio))
        .max()
        .unwrap_or(1);
    let mut folders = Vec::new();
    let (mut nll_series, mut spectrum) = (Vec::new(), Vec::new());
    for (dir, xtr, xte, probe, pca) in &sets {
        let ptr = pca.project(xtr, dims);
        let pte = standardise(&pca.project(xte, dims), &ptr);
        let ptr = standardise(&ptr, &ptr);
        let mut nll = serde_json::Map::new();
        let mut bic = serde_json::Map::new();
        let mut pts = Vec::new();
        for &k in &a.k {
            if k < 1 || k > ptr.size()[0] {
                continue;
            }
            let g = DiagGmm::fit(
                &ptr,
                k,
                &FitOptions {
                    n_init: a.n_init,
                    seed: a.seed,
                    ..Default::default()
                },
            );
            let v = -g.score(&pte);
            tracing::info!("{}: K = {k}: held-out NLL {v:.4}", dir.display());
            nll.insert(k.to_string(), v.into());
            bic.insert(k.to_string(), g.bic(&ptr).into());
            pts.push((k as f64, v));
        }
        let name = dir.display().to_string();
        nll_series.push((name.clone(), pts));
        spectrum.push((
            name.clone(),
            pca.cumulative_ratio()
                .iter()
                .enumerate()
                .map(|(i, r)| ((i + 1) as f64, *r))
                .collect(),
        ));
        folders.push(json!({
            "path": name,
            "train_rows": xtr.size()[0],
            "held_out_rows": xte.size()[0],
            "values_per_latent": xtr.size()[1],
            "probe_accuracy": probe,
            "pca_dims_for_ratio": pca.dims_for(a.pca_ratio),
            "nll_held_out": nll,
            "bic_train": bic,
        }));
    }
    let report = json!({
        "pca_ratio": a.pca_ratio,
        "pca_dims": dims,
        "k": a.k,
        "held_out": a.held_out,
        "seed": a.seed,
        "folders": folders,
        "method": "spec §8.3-8.4: probe = multinomial logistic regression (C = 1) on standardised \
                   flattened crop latents, top-1 on the held-out rows; GMM = PCA (fitted on \
                   each folder's training rows) to the same dimension for every folder, \
                   standardised, diagonal GMM by EM, NLL per latent on the held-out rows",
    });
    let json_path = a.output.join("report.json");
    maetok_nn::atomic::write(
        &json_path,
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    maetok_trainer::viz::write_lines(
        &format!("held-out NLL of diagonal GMMs on {dims} PCA dimensions"),
        ("components K", "NLL per latent"),
        &nll_series,
        &a.output.join("nll_vs_k.png"),
    )?;
    maetok_trainer::viz::write_lines(
        "PCA spectrum",
        ("components", "cumulative share of the variance"),
        &spectrum,
        &a.output.join("pca_spectrum.png"),
    )?;
    let mut md = format!(
        "# Latent analysis\n\nPCA to {dims} dimensions (the most any folder needs for {:.0} % of \
         its variance), held-out share {}.\n\n| folder | probe top-1 | PCA dims | {} |\n|---|---|---|{}\n",
        100.0 * a.pca_ratio,
        a.held_out,
        a.k.iter().map(|k| format!("NLL K={k}")).collect::<Vec<_>>().join(" | "),
        "---|".repeat(a.k.len())
    );
    for f in &folders {
        md.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            f["path"].as_str().unwrap_or(""),
            f["probe_accuracy"]
                .as_f64()
                .map_or("– (unlabelled)".into(), |p| format!("{:.2} %", 100.0 * p)),
            f["pca_dims_for_ratio"],
            a.k.iter()
                .map(|k| f["nll_held_out"][k.to_string()]
                    .as_f64()
                    .map_or("–".into(), |v| format!("{v:.3}")))
                .collect::<Vec<_>>()
                .join(" | ")
        ));
    }
    md.push_str("\n![NLL against K](nll_vs_k.png)\n\n![PCA spectrum](pca_spectrum.png)\n");
    maetok_nn::atomic::write(&a.output.join("report.md"), md.as_bytes())?;
    println!(
        "latent analysis of {} folders → {}",
        folders.len(),
        json_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn tokenizer(a: TokenizerArgs) -> anyhow::Result<ExitCode> {
    let device = maetok_nn::device::parse_device(&a.device)?;
    let ext = a
        .inception
        .as_ref()
        .map(|p| {
            Extractor::load(p, device, a.batch_size)
                .with_context(|| format!("--inception {}", p.display()))
        })
        .transpose()?;
    let range = if a.ssim_standard { 1.0 } else { 2.0 };
    let r = super::codec::reconstruct_all(
        &a.checkpoint,
        &a.input,
        &a.output,
        a.batch_size,
        8,
        (&a.device, a.dtype.as_deref()),
        ext.as_ref(),
        range,
    )?;
    anyhow::ensure!(
        !r.rows.is_empty(),
        "--input {}: no images were read",
        a.input
    );
    let rfid = match &r.features {
        Some((o, rec)) if o.size()[0] >= 2 => {
            Some(Statistics::from_features(rec)?.frechet_distance(&Statistics::from_features(o)?)?)
        }
        _ => None,
    };
    let (psnr, ssim) = (r.mean("psnr"), r.mean("ssim"));
    let random = a.inception.as_deref().is_some_and(weights_note);
    let ssim_kind = if a.ssim_standard {
        "standard (data_range 1.0)"
    } else {
        "the reference's (data_range 2.0 on [0, 1] images)"
    };
    let report = json!({
        "rfid": rfid,
        "psnr": psnr,
        "ssim": ssim,
        "ssim_data_range": range,
        "psnr_mean_colour_baseline": r.mean("psnr_mean_colour"),
        "images": r.rows.len(),
        "skipped": r.skipped,
        "resolution": r.res,
        "checkpoint": a.checkpoint.display().to_string(),
        "inception": a.inception.as_ref().map(|p| json!({
            "path": p.display().to_string(),
            "sha256": ext.as_ref().map(|e| e.sha256.clone()),
            "random_weights": random,
        })),
        "metric": "spec §8.1: uint8 via clamp(127.5x+128), PSNR on [0, 1]; rFID of the \
                   reconstructions against the originals (pytorch-fid's Inception port)",
        "per_image": r.rows,
    });
    let json_path = a.output.join("report.json");
    maetok_nn::atomic::write(
        &json_path,
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    let originals: Vec<&[u8]> = r.originals.iter().map(|o| o.as_slice()).collect();
    let recons: Vec<&[u8]> = r.recons.iter().map(|v| v.as_slice()).collect();
    maetok_trainer::viz::write_grid(&originals, &recons, r.res, 8, &a.output.join("grid.png"))?;
    let md = format!(
        "# Tokenizer metrics\n\n{}| metric | value |\n|---|---|\n| rFID | {} |\n| PSNR (dB) | {psnr:.3} |\n\
         | SSIM, {ssim_kind} | {ssim:.4} |\n| PSNR of the per-image mean colour (baseline) | {:.3} |\n\n\
         `{}` on {} images of `{}` at {} px ({} skipped). Images and per-image values: `images/`, \
         `report.json`.\n\n![originals above reconstructions](grid.png)\n",
        if random {
            "**The Inception weights are RANDOM (a demo or test file): rFID measures nothing.**\n\n"
        } else {
            ""
        },
        rfid.map_or("– (no --inception)".to_string(), |v| format!("{v:.4}")),
        r.mean("psnr_mean_colour"),
        a.checkpoint.display(),
        r.rows.len(),
        a.input,
        r.res,
        r.skipped,
    );
    maetok_nn::atomic::write(&a.output.join("report.md"), md.as_bytes())?;
    println!(
        "{} images: {}PSNR {psnr:.2} dB, SSIM {ssim:.4} → {}",
        r.rows.len(),
        rfid.map_or(String::new(), |v| format!("rFID {v:.3}, ")),
        json_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn default_cache() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("maetok/features")
}

/// A progress line every few seconds with the rate and the ETA.
fn progress(what: &str) -> impl FnMut(usize, usize) + '_ {
    let start = Instant::now();
    let mut last = Instant::now();
    move |done, total| {
        if last.elapsed().as_secs_f64() >= 5.0 || done == total {
            last = Instant::now();
            let rate = done as f64 / start.elapsed().as_secs_f64().max(1e-9);
            let eta = (total - done) as f64 / rate.max(1e-9);
            tracing::info!("{what}: {done}/{total} images, {rate:.1} img/s, ETA {eta:.0} s");
        }
    }
}

/// A reference `.npz`'s statistics (`mu`/`sigma`, `mu_s`/`sigma_s`), when it has them.
fn file_statistics(
    path: &Path,
    names: &[String],
    mu: &str,
    sigma: &str,
) -> anyhow::Result<Option<Statistics>> {
    if !(names.iter().any(|n| n == mu) && names.iter().any(|n| n == sigma)) {
        return Ok(None);
    }
    let (_, m) = npy::read_f64(path, mu)?;
    let (_, s) = npy::read_f64(path, sigma)?;
    Ok(Some(Statistics::new(m, s).with_context(|| {
        format!("{}: `{mu}` / `{sigma}`", path.display())
    })?))
}

fn generation(a: GenerationArgs) -> anyhow::Result<ExitCode> {
    let device = maetok_nn::device::parse_device(&a.device)?;
    std::fs::create_dir_all(&a.output)
        .with_context(|| format!("creating {}", a.output.display()))?;
    let ext = Extractor::load(&a.inception, device, a.batch)
        .with_context(|| format!("--inception {}", a.inception.display()))?;
    let random = weights_note(&a.inception);
    let cache = a.cache.clone().unwrap_or_else(default_cache);

    // The reference: statistics from the file, features from its images, or both.
    let ref_names = if a.reference.is_dir() {
        Vec::new()
    } else {
        npy::names(&a.reference)
            .with_context(|| format!("--reference {}", a.reference.display()))?
    };
    let ref_stats = file_statistics(&a.reference, &ref_names, "mu", "sigma")?;
    let ref_spatial = file_statistics(&a.reference, &ref_names, "mu_s", "sigma_s")?;
    let ref_has_images = a.reference.is_dir() || ref_names.iter().any(|n| n == "arr_0");
    if ref_stats.is_none() && !ref_has_images {
        bail!(
            "--reference {}: neither images (`arr_0`, a folder) nor statistics (`mu`, `sigma`); it holds {:?}",
            a.reference.display(),
            ref_names
        );
    }
    let (ref_features, cached): (Option<FeatureSet>, bool) = if ref_has_images {
        let set = ImageSet::open(&a.reference)
            .with_context(|| format!("--reference {}", a.reference.display()))?;
        let (f, hit) = ext.cached(&set, &cache, progress("reference"))?;
        tracing::info!(
            "reference: {} images{}",
            f.len(),
            if hit {
                " (features from the cache)"
            } else {
                ""
            }
        );
        (Some(f), hit)
    } else {
        (None, false)
    };

    let samples =
        ImageSet::open(&a.samples).with_context(|| format!("--samples {}", a.samples.display()))?;
    let sf = ext.extract(&samples, progress("samples"))?;
    anyhow::ensure!(
        sf.len() >= 2,
        "--samples: {} images; FID needs at least 2",
        sf.len()
    );

    let stats_of = |f: &FeatureSet, spatial: bool| {
        Statistics::from_features(if spatial { &f.spatial } else { &f.pool })
    };
    // The file's statistics when it has them (its spatial ones for sFID if given),
    // otherwise those of the reference images.
    let (ref_pool, ref_sp, statistics_from) = match (ref_stats, &ref_features) {
        (Some(p), _) => (p, ref_spatial, "the reference file's mu/sigma"),
        (None, Some(f)) => (
            stats_of(f, false)?,
            Some(stats_of(f, true)?),
            "the reference images",
        ),
        (None, None) => unreachable!("checked above"),
    };
    let fid = stats_of(&sf, false)?.frechet_distance(&ref_pool)?;
    let sfid = match &ref_sp {
        Some(r) => Some(stats_of(&sf, true)?.frechet_distance(r)?),
        None => None,
    };
    let (is, is_splits) = inception_score(&sf.logits, a.split_size);
    let pr = ref_features
        .as_ref()
        .map(|r| precision_recall(&r.pool.to_device(device), &sf.pool.to_device(device)));

    let report = json!({
        "fid": fid,
        "sfid": sfid,
        "is": is,
        "precision": pr.map(|p| p.0),
        "recall": pr.map(|p| p.1),
        "is_splits": is_splits,
        "samples": { "path": a.samples.display().to_string(), "images": sf.len() },
        "reference": {
            "path": a.reference.display().to_string(),
            "images": ref_features.as_ref().map(|f| f.len()),
            "statistics": statistics_from,
            "features_from_cache": cached,
        },
        "inception": {
            "path": a.inception.display().to_string(),
            "sha256": ext.sha256,
            "random_weights": random,
        },
        "convention": CONVENTION,
    });
    let json_path = a.output.join("report.json");
    maetok_nn::atomic::write(
        &json_path,
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    let md = markdown(&a, fid, sfid, is, &is_splits, pr, sf.len(), random);
    maetok_nn::atomic::write(&a.output.join("report.md"), md.as_bytes())?;
    let bars: Vec<(String, f64)> = is_splits
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("{}", i + 1), *v))
        .collect();
    maetok_trainer::viz::write_bars(
        &format!("Inception Score per split of {}", a.split_size),
        "IS",
        &bars,
        &a.output.join("is_splits.png"),
    )?;
    write_sample_grid(&samples, &a.output.join("samples.png"))?;
    println!(
        "FID {fid:.3}{}  IS {is:.3}{}  ({} samples) → {}",
        sfid.map_or(String::new(), |s| format!("  sFID {s:.3}")),
        pr.map_or(String::new(), |(p, r)| format!(
            "  precision {p:.3}  recall {r:.3}"
        )),
        sf.len(),
        json_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

const CONVENTION: &str = "Features from pytorch-fid's PyTorch port of the 2015-12-05 TF \
    Inception graph (same weights; PyTorch's bilinear resize and 2x/255-1 scaling). The ADM \
    evaluator's reference statistics come from the TF graph itself; pytorch-fid documents the \
    two as 'very similar (e.g. .08 absolute error and 0.0009 relative error on LSUN)' but not \
    identical. Precision/recall distances in float32 (the ADM evaluator: float16).";

/// Whether the weights file says it holds random weights (the demo's and the tests').
fn weights_note(path: &Path) -> bool {
    std::fs::File::open(path)
        .ok()
        .and_then(|mut f| {
            use std::io::Read;
            let mut len = [0u8; 8];
            f.read_exact(&mut len).ok()?;
            let n = u64::from_le_bytes(len).min(1 << 20) as usize;
            let mut h = vec![0u8; n];
            f.read_exact(&mut h).ok()?;
            Some(String::from_utf8_lossy(&h).contains("RANDOM WEIGHTS"))
        })
        .unwrap_or(false)
}

#[allow(clippy::too_many_arguments)]
fn markdown(
    a: &GenerationArgs,
    fid: f64,
    sfid: Option<f64>,
    is: f64,
    splits: &[f64],
    pr: Option<(f64, f64)>,
    n: usize,
    random: bool,
) -> String {
    let opt = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.4}"));
    let mut s = format!(
        "# Generation metrics\n\n{}| metric | value |\n|---|---|\n| FID | {fid:.4} |\n\
         | sFID | {} |\n| Inception Score ({} splits of {}) | {is:.4} |\n| precision (k = 3) | {} |\n\
         | recall (k = 3) | {} |\n\n",
        if random {
            "**The Inception weights are RANDOM (a demo or test file): these numbers measure \
             nothing.**\n\n"
        } else {
            ""
        },
        opt(sfid),
        splits.len(),
        a.split_size,
        opt(pr.map(|p| p.0)),
        opt(pr.map(|p| p.1)),
    );
    s.push_str(&format!(
        "Samples: `{}` ({n} images). Reference: `{}`. Inception: `{}`.\n\n{CONVENTION}\n\n\
         ![Inception Score per split](is_splits.png)\n\n![the first samples](samples.png)\n",
        a.samples.display(),
        a.reference.display(),
        a.inception.display()
    ));
    s
}

/// The first 32 samples, 8 per row, when they are square and of one size.
fn write_sample_grid(set: &ImageSet, path: &Path) -> anyhow::Result<()> {
    let head = set.head(32)?;
    let Some(&(side, _, _)) = head.first() else {
        return Ok(());
    };
    if head.iter().any(|(w, h, _)| *w != side || *h != side) {
        return Ok(());
    }
    let images: Vec<&[u8]> = head.iter().map(|(_, _, b)| b.as_slice()).collect();
    let rows: Vec<(String, Vec<&[u8]>)> = images
        .chunks(8)
        .enumerate()
        .map(|(i, c)| (format!("{}–{}", i * 8, i * 8 + c.len() - 1), c.to_vec()))
        .collect();
    let rows: Vec<(&str, Vec<&[u8]>)> = rows.iter().map(|(l, v)| (l.as_str(), v.clone())).collect();
    maetok_trainer::viz::write_rows(&rows, side, path)
}
