//! `maetok demo`: the whole preprocessing stage on an embedded default, for a first look.
//!
//! Generates a small labelled, captioned dataset (4 ImageNet classes of drawn shapes) as an
//! ImageFolder and as WebDataset tars, seeds it with the bad inputs a real crawl contains
//! (empty, garbage, truncated and tiny files, a tar cut mid-member), preprocesses both into
//! verified shards, and writes a summary and a picture of the stored views. The tars also
//! go through two ViT teachers (DINOv2- and SigLIP-shaped towers with RANDOM weights written
//! for the demo, so no download is needed; their features are meaningless) and, when the
//! repository's copy of the CLIP BPE vocabulary is at hand, caption tokenization. Then a
//! tiny tokenizer (both stages) and a tiny SiT on its latents train, and `maetok eval`
//! scores them, all linked from `summary.md`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use maetok_pipeline::preprocess::config::TeacherConfig;
use maetok_pipeline::preprocess::teach::Storage;
use maetok_pipeline::preprocess::{self, PreprocessConfig, RunOptions};
use maetok_pipeline::shard::reader::ShardFolder;
use maetok_pipeline::shard::{inspect, verify};
use maetok_pipeline::synth;
use maetok_teachers::random::{write_random_vit, RandomVit};
use maetok_teachers::Family;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Folder the demo owns (recreated on every run).
    #[arg(long, default_value = "demo-out")]
    output: PathBuf,
    /// Images per class in the ImageFolder.
    #[arg(long, default_value_t = 24)]
    per_class: usize,
    /// WebDataset tars (plus one truncated tar).
    #[arg(long, default_value_t = 2)]
    tars: usize,
    /// Samples per tar.
    #[arg(long, default_value_t = 24)]
    per_tar: usize,
    /// Views per image.
    #[arg(long, default_value_t = 4)]
    views: u16,
    /// Decode threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Stage-1 steps of the demo tokenizer (0 skips the tokenizer part).
    #[arg(long, default_value_t = 1000)]
    train_steps: u64,
    /// Images per class in the tokenizer's own training ImageFolder.
    #[arg(long, default_value_t = 400)]
    tokenizer_per_class: usize,
    /// Stage-2 (decoder fine-tuning) steps.
    #[arg(long, default_value_t = 1000)]
    decoder_steps: u64,
    /// Seed of the demo tokenizer's and SiT's training (initial weights, masks, data order).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Steps of the tiny SiT on the tokenizer's latents (0 skips the diffusion part).
    #[arg(long, default_value_t = 400)]
    sit_steps: u64,
    /// Skip the closing `maetok eval` of the tokenizer, the samples and the latents.
    #[arg(long)]
    no_eval: bool,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let out = &a.output;
    for sub in ["data", "shards", "runs", "latents", "eval"] {
        let p = out.join(sub);
        if p.exists() {
            std::fs::remove_dir_all(&p).with_context(|| format!("clearing {}", p.display()))?;
        }
    }
    // 1. Data.
    let folder = out.join("data/imagefolder");
    synth::write_imagefolder(&folder, a.per_class).context("writing the ImageFolder")?;
    let bad = synth::write_bad_inputs(&folder.join(synth::CLASSES[0].0), "bad")
        .context("writing bad inputs")?;
    let wds = out.join("data/wds");
    let pattern = synth::write_webdataset(&wds, a.tars, a.per_tar).context("writing tars")?;
    // One more tar, cut in the middle of a member: its earlier samples must survive.
    let whole = std::fs::read(wds.join("data-000000.tar"))?;
    std::fs::write(
        wds.join(format!("data-{:06}.tar", a.tars)),
        &whole[..whole.len() * 2 / 3],
    )?;
    let pattern = pattern.replace(
        &format!("{:06}}}", a.tars.saturating_sub(1)),
        &format!("{:06}}}", a.tars),
    );
    println!(
        "demo data: {} images in {} classes (+{bad} bad files) at {}, {} tars (+1 truncated) at {}",
        a.per_class * synth::CLASSES.len(),
        synth::CLASSES.len(),
        folder.display(),
        a.tars,
        pattern
    );

    // Random-weight teachers, clearly labelled (docs/teachers.md lists the real files).
    let teacher_dir = out.join("data/random-teachers");
    let mut teachers = Vec::new();
    for (i, (family, storage)) in [
        (Family::Dinov2, Storage::F16),
        (Family::Siglip, Storage::Int8),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = teacher_dir.join(family.name());
        let shape = RandomVit {
            family,
            width: 64,
            depth: 2,
            heads: 2,
            patch: 14,
            grid: 16,
            hidden: None,
            seed: i as i64,
        };
        write_random_vit(&dir, &shape).context("writing random teacher weights")?;
        teachers.push(TeacherConfig {
            name: family.name().into(),
            weights: dir.join("model.safetensors"),
            model_config: None,
            device: "cpu".into(),
            dtype: None,
            storage,
            batch_size: 16,
            patch_size: 16,
            normalization: None,
        });
    }
    println!(
        "demo teachers: dinov2 (f16) and siglip (int8) with RANDOM WEIGHTS (64 wide, 2 blocks, \
         14-px patches resampled to 16) at {}: the pipeline is real, their features are not",
        teacher_dir.display()
    );
    let bpe = Path::new("tests/fixtures/bpe/bpe_simple_vocab_16e6.txt.gz");
    let caption_bpe = bpe.is_file().then(|| bpe.to_path_buf());
    match &caption_bpe {
        Some(p) => println!(
            "demo captions: tokenized with the CLIP BPE vocabulary at {}",
            p.display()
        ),
        None => println!(
            "demo captions: not tokenized ({} not found; run from the repository root)",
            bpe.display()
        ),
    }

    // 2. Preprocess both.
    let mut report = String::from("# maetok demo\n\n");
    for (name, input) in [
        ("imagefolder", folder.display().to_string()),
        ("wds", pattern),
    ] {
        let with_teachers = name == "wds";
        let cfg = PreprocessConfig {
            inputs: vec![input],
            views: a.views,
            shard_rows: 64,
            row_group_rows: 32,
            teachers: if with_teachers {
                teachers.clone()
            } else {
                Vec::new()
            },
            caption_bpe: if with_teachers {
                caption_bpe.clone()
            } else {
                None
            },
            ..Default::default()
        };
        let dir = out.join("shards").join(name);
        let opts = RunOptions {
            output: dir.clone(),
            threads: a.threads,
            node_rank: 0,
            num_nodes: 1,
            show_progress: true,
        };
        let summary = preprocess::run(&cfg, &opts)
            .with_context(|| format!("preprocessing the {name} demo data"))?;
        let text = super::preprocess::render(&summary);
        print!("{text}");
        let v = verify::verify(&dir, true)?;
        anyhow::ensure!(
            v.problems.is_empty(),
            "demo shards failed verification: {:?}",
            v.problems
        );
        let verdict = format!("verify --deep: {} shards, {} rows, OK\n", v.shards, v.rows);
        print!("{verdict}");
        let note = if with_teachers {
            "Teacher columns `dinov2` and `siglip` come from RANDOM-WEIGHT demo towers \
             (`data/random-teachers/`): the plumbing is real, the features are not.\n\n"
        } else {
            ""
        };
        report += &format!(
            "## {name}\n\n{note}```\n{text}{verdict}\n{}```\n\n",
            inspect::inspect(&dir, 4)?
        );
    }

    // 3. A picture of what was stored.
    let grid = out.join("views.png");
    views_grid(&out.join("shards/imagefolder"), a.views as usize, &grid)?;
    report += "Stored views (rows: images; columns: view 0 center crop, view 1 flip, views 2+ random-resized crops): `views.png`\n";
    // 4. The tiny tokenizer: stage 1, stage 2, held-out reconstructions.
    if a.train_steps > 0 {
        let t = super::demo_tokenizer::run(
            out,
            a.tokenizer_per_class,
            a.train_steps,
            a.decoder_steps,
            a.seed,
            a.threads,
        )?;
        report += &t.text;
        // 5. A tiny SiT on the tokenizer's latents, and its samples.
        let sit = (a.sit_steps > 0)
            .then(|| super::demo_sit::run(out, &t.tokenizer, &t.shards, a.sit_steps, a.seed))
            .transpose()?;
        if let Some(s) = &sit {
            report += &s.text;
        }
        // 6. `maetok eval` of the tokenizer, the samples and the latents.
        if !a.no_eval {
            let inputs = super::demo_eval::Inputs {
                tokenizer: &t.tokenizer,
                held_out: &t.held_out,
                sit: sit.as_ref().map(|s| {
                    (
                        s.latents.as_path(),
                        s.run_dir.as_path(),
                        s.labels.as_slice(),
                    )
                }),
                seed: a.seed,
            };
            report += &super::demo_eval::run(out, &inputs)?;
        }
    }
    std::fs::write(out.join("summary.md"), &report)?;
    println!(
        "wrote {} and {}",
        out.join("summary.md").display(),
        grid.display()
    );
    println!(
        "next: `maetok shards inspect {}`",
        out.join("shards/imagefolder").display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Tiles the first images' views (one row per image) into a PNG.
fn views_grid(dir: &Path, views: usize, path: &Path) -> anyhow::Result<()> {
    let folder = ShardFolder::open(dir)?;
    anyhow::ensure!(folder.shards() > 0, "{}: no shards", dir.display());
    let columns = ["image".to_string()];
    let rows = folder
        .read_shard(0, Some(&columns))?
        .next()
        .context("empty shard")??;
    let tiles: Vec<image::RgbImage> = (0..rows.len().min(views * 6))
        .map(|i| -> anyhow::Result<image::RgbImage> {
            let png = rows.image(i)?.context("a view without an image")?;
            Ok(image::load_from_memory(png)?.into_rgb8())
        })
        .collect::<Result<_, _>>()?;
    let side = tiles.first().map_or(0, |t| t.width());
    let rows = tiles.len().div_ceil(views) as u32;
    let pad = 4u32;
    let mut canvas = image::RgbImage::from_pixel(
        views as u32 * (side + pad) + pad,
        rows * (side + pad) + pad,
        image::Rgb([255, 255, 255]),
    );
    for (i, t) in tiles.iter().enumerate() {
        let (r, c) = ((i / views) as u32, (i % views) as u32);
        image::imageops::overlay(
            &mut canvas,
            t,
            (pad + c * (side + pad)) as i64,
            (pad + r * (side + pad)) as i64,
        );
    }
    canvas
        .save(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
