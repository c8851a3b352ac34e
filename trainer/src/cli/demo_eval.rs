//! The demo's evaluation part (issue 14): `maetok eval tokenizer` of the demo tokenizer on
//! its held-out images, `maetok sample` of the tiny SiT (the demo's classes, in turn), then
//! `maetok eval generation` of those samples against the held-out images and `maetok eval
//! latents` of the tokenizer's latents, each run as a user types it. The Inception network
//! has RANDOM weights written for the demo (docs/evaluation.md names the real file), so the
//! FID-family numbers exercise the pipeline and measure nothing; PSNR, SSIM, the probe and
//! the mixture fits are real.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// What the evaluation reads.
pub struct Inputs<'a> {
    pub tokenizer: &'a Path,
    pub held_out: &'a Path,
    /// The latent folder, the SiT run folder (its latest step's EMA weights) and the
    /// classes to sample, when the diffusion part ran.
    pub sit: Option<(&'a Path, &'a Path, &'a [i64])>,
    pub seed: u64,
}

/// Runs `maetok ARGS…` in this process, printed first as a shell line.
fn maetok(args: &[String]) -> anyhow::Result<String> {
    let line = format!("maetok {}", args.join(" "));
    println!("demo eval: $ {line}");
    let code = crate::run_args(args).with_context(|| format!("`{line}`"))?;
    anyhow::ensure!(code == std::process::ExitCode::SUCCESS, "`{line}` failed");
    Ok(line)
}

fn report(dir: &Path) -> anyhow::Result<serde_json::Value> {
    let p = dir.join("report.json");
    let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    Ok(serde_json::from_str(&text)?)
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn num(v: &serde_json::Value, prec: usize) -> String {
    v.as_f64().map_or("–".into(), |x| format!("{x:.prec$}"))
}

/// Runs the evaluation under `out/eval`; returns the summary's section.
pub fn run(out: &Path, i: &Inputs) -> anyhow::Result<String> {
    let eval = out.join("eval");
    let inception: PathBuf = out.join("data/random-inception/inception.safetensors");
    std::fs::create_dir_all(inception.parent().unwrap())?;
    maetok_teachers::random::write_random_inception(&inception, i.seed)
        .with_context(|| format!("writing {}", inception.display()))?;
    println!(
        "demo eval: FID Inception with RANDOM WEIGHTS at {}: the FID-family numbers below \
         exercise the pipeline and measure nothing",
        inception.display()
    );
    let mut lines = Vec::new();
    let tok_dir = eval.join("tokenizer");
    lines.push(maetok(&[
        "eval".into(),
        "tokenizer".into(),
        "--checkpoint".into(),
        s(i.tokenizer),
        "--input".into(),
        s(i.held_out),
        "--output".into(),
        s(&tok_dir),
        "--inception".into(),
        s(&inception),
    ])?);
    let t = report(&tok_dir)?;
    let mut text = format!(
        "## evaluation\n\n`maetok eval` on the demo's outputs (`eval/`). The FID Inception \
         network has RANDOM WEIGHTS (`data/random-inception/`), so rFID, FID, IS and \
         precision/recall exercise the pipeline and measure nothing; docs/evaluation.md names \
         the real file.\n\n| report | numbers |\n|---|---|\n\
         | [tokenizer, held-out images](eval/tokenizer/report.md) | PSNR {} dB, SSIM {}, rFID {} (random Inception) |\n",
        num(&t["psnr"], 2),
        num(&t["ssim"], 4),
        num(&t["rfid"], 2),
    );
    if let Some((latents, sit, labels)) = i.sit {
        let samples = eval.join("samples");
        let per_class = 8;
        let labels: Vec<String> = labels.iter().map(i64::to_string).collect();
        lines.push(maetok(&[
            "sample".into(),
            "--model".into(),
            s(sit),
            "--tokenizer".into(),
            s(i.tokenizer),
            "--output".into(),
            s(&samples),
            "--num".into(),
            (per_class * labels.len()).to_string(),
            "--labels".into(),
            labels.join(","),
            "--sampler".into(),
            "euler".into(),
            "--steps".into(),
            "50".into(),
            "--cfg-scale".into(),
            "3".into(),
            "--seed".into(),
            i.seed.to_string(),
        ])?);
        let gen_dir = eval.join("generation");
        lines.push(maetok(&[
            "eval".into(),
            "generation".into(),
            "--samples".into(),
            s(&samples.join("samples.npz")),
            "--reference".into(),
            s(i.held_out),
            "--output".into(),
            s(&gen_dir),
            "--inception".into(),
            s(&inception),
            "--cache".into(),
            s(&eval.join("feature-cache")),
            "--split-size".into(),
            per_class.to_string(),
        ])?);
        let g = report(&gen_dir)?;
        text += &format!(
            "| [generation: {} samples vs the held-out images](eval/generation/report.md) | FID {}, IS {}, precision {}, recall {} (random Inception) |\n",
            per_class * labels.len(),
            num(&g["fid"], 2),
            num(&g["is"], 3),
            num(&g["precision"], 3),
            num(&g["recall"], 3),
        );
        let lat_dir = eval.join("latents");
        lines.push(maetok(&[
            "eval".into(),
            "latents".into(),
            "--latents".into(),
            s(latents),
            "--output".into(),
            s(&lat_dir),
            "--k".into(),
            "1,2,4,8".into(),
        ])?);
        let l = report(&lat_dir)?;
        let f = &l["folders"][0];
        text += &format!(
            "| [latents: linear probe, GMM modes](eval/latents/report.md) | probe top-1 {} %, held-out NLL at K = 1, 8: {}, {} |\n",
            f["probe_accuracy"]
                .as_f64()
                .map_or("–".into(), |p| format!("{:.1}", 100.0 * p)),
            num(&f["nll_held_out"]["1"], 3),
            num(&f["nll_held_out"]["8"], 3),
        );
    }
    text += &format!("\nCommands:\n\n```\n{}\n```\n", lines.join("\n"));
    println!("demo eval: wrote {}", eval.display());
    Ok(text)
}
