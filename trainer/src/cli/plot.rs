//! `maetok plot`: one logged metric of several runs on one picture, to compare them (a
//! run's own `loss.png` draws every term of that run alone), with each curve's first, last
//! and tail-mean values printed and written next to the picture as JSON.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// `NAME=PATH`: a run folder (its `metrics.jsonl`) or a metrics file; repeat per curve.
    #[arg(long = "run", value_name = "NAME=PATH", required = true)]
    runs: Vec<String>,
    /// The metrics key drawn.
    #[arg(long, default_value = "loss")]
    key: String,
    /// Moving average over this many logged points (1: as logged).
    #[arg(long, default_value_t = 1)]
    smooth: usize,
    /// Share of each curve's last points averaged into `tail_mean`.
    #[arg(long, default_value_t = 0.2)]
    tail: f64,
    #[arg(long)]
    title: Option<String>,
    /// The PNG; the summary goes to the same path with `.json`.
    #[arg(long, value_name = "FILE.png")]
    output: PathBuf,
}

/// `(step, value)` of `key` in a metrics file's lines, in file order.
fn read_curve(path: &Path, key: &str) -> anyhow::Result<Vec<(u64, f64)>> {
    let file = if path.is_dir() {
        path.join("metrics.jsonl")
    } else {
        path.to_path_buf()
    };
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let mut pts = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not a JSON line", file.display(), i + 1))?;
        if let (Some(s), Some(y)) = (v["step"].as_u64(), v[key].as_f64()) {
            pts.push((s, y));
        }
    }
    if pts.is_empty() {
        bail!("{}: no line has both `step` and `{key}`", file.display());
    }
    Ok(pts)
}

/// Trailing moving average over `w` points (the first points average what exists).
fn smooth(pts: &[(u64, f64)], w: usize) -> Vec<(u64, f64)> {
    let w = w.max(1);
    (0..pts.len())
        .map(|i| {
            let lo = (i + 1).saturating_sub(w);
            let win = &pts[lo..=i];
            (
                pts[i].0,
                win.iter().map(|p| p.1).sum::<f64>() / win.len() as f64,
            )
        })
        .collect()
}

/// Mean of the last `share` of the points (at least one).
fn tail_mean(pts: &[(u64, f64)], share: f64) -> f64 {
    let n = ((pts.len() as f64 * share).ceil() as usize).clamp(1, pts.len());
    pts[pts.len() - n..].iter().map(|p| p.1).sum::<f64>() / n as f64
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    if !(a.tail > 0.0 && a.tail <= 1.0) {
        bail!("--tail {}: must be in (0, 1]", a.tail);
    }
    let mut series = Vec::new();
    let mut summary = serde_json::Map::new();
    for spec in &a.runs {
        let Some((name, path)) = spec.split_once('=') else {
            bail!("--run {spec:?}: expected NAME=PATH");
        };
        let raw = read_curve(Path::new(path), &a.key).with_context(|| format!("--run {spec}"))?;
        let (first, last) = (raw[0], raw[raw.len() - 1]);
        let tail = tail_mean(&raw, a.tail);
        println!(
            "{name}: {} = {:.5} at step {} → {:.5} at step {}; mean of the last {:.0} %: {tail:.5}",
            a.key,
            first.1,
            first.0,
            last.1,
            last.0,
            a.tail * 100.0
        );
        summary.insert(
            name.to_string(),
            serde_json::json!({
                "points": raw.len(), "first": first.1, "first_step": first.0,
                "last": last.1, "last_step": last.0, "tail_mean": tail, "tail_share": a.tail,
            }),
        );
        series.push((name.to_string(), smooth(&raw, a.smooth)));
    }
    let title = a.title.unwrap_or_else(|| {
        let s = if a.smooth > 1 {
            format!(" (moving average of {})", a.smooth)
        } else {
            String::new()
        };
        format!("{}{s}", a.key)
    });
    maetok_trainer::viz::write_loss_curves(&title, &series, &a.output)?;
    let json = a.output.with_extension("json");
    maetok_nn::atomic::write(&json, &serde_json::to_vec_pretty(&summary)?)?;
    println!("wrote {} and {}", a.output.display(), json.display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_and_tail_mean() {
        let p = [(1, 1.0), (2, 3.0), (3, 5.0), (4, 7.0)];
        assert_eq!(smooth(&p, 2), vec![(1, 1.0), (2, 2.0), (3, 4.0), (4, 6.0)]);
        assert_eq!(smooth(&p, 1), p.to_vec());
        assert_eq!(tail_mean(&p, 0.5), 6.0);
        assert_eq!(tail_mean(&p, 0.01), 7.0);
    }

    #[test]
    fn reads_a_metrics_file_and_names_what_is_missing() {
        let dir = std::env::temp_dir().join(format!("maetok-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("metrics.jsonl");
        std::fs::write(
            &f,
            "{\"step\":1,\"loss\":0.5}\n{\"step\":2}\n{\"step\":3,\"loss\":0.25}\n",
        )
        .unwrap();
        assert_eq!(read_curve(&dir, "loss").unwrap(), vec![(1, 0.5), (3, 0.25)]);
        let e = read_curve(&f, "lr").unwrap_err().to_string();
        assert!(e.contains("no line has both `step` and `lr`"), "{e}");
        std::fs::write(&f, "{\"step\":1,\n").unwrap();
        let e = read_curve(&f, "loss").unwrap_err().to_string();
        assert!(e.contains("metrics.jsonl:1: not a JSON line"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
