//! A run folder (ARCHITECTURE §5): the resolved `config.toml`, `metrics.jsonl`,
//! `checkpoints/step-NNNNNNN/` written under a temporary name and renamed when complete,
//! a `latest` file naming the newest complete step folder (replaced atomically), and
//! `samples/` pictures.

use std::io::{BufRead, Write};

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::data::index::DataCursor;

/// What a step folder needs besides weights to continue exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// `tokenizer` or `decoder`.
    pub stage: String,
    /// Steps completed.
    pub step: u64,
    /// Data cursor after the last completed step.
    pub cursor: DataCursor,
    pub world: usize,
    /// sha256 of the resolved `config.toml`.
    pub config_sha256: String,
    /// LeCAM's logit EMAs (GAN runs).
    #[serde(default)]
    pub lecam: crate::losses::gan::LeCam,
}

pub struct RunDir {
    pub root: PathBuf,
}

fn step_name(step: u64) -> String {
    format!("step-{step:07}")
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

use maetok_nn::atomic::write as write_atomic;

impl RunDir {
    /// Open `root` for `config_toml`: a new run writes the config; an existing one must
    /// hold the same config (a changed config would not continue the same run).
    pub fn open(root: &Path, config_toml: &str) -> anyhow::Result<Self> {
        let cfg_path = root.join("config.toml");
        if cfg_path.exists() {
            let old = std::fs::read_to_string(&cfg_path)
                .with_context(|| format!("reading {}", cfg_path.display()))?;
            if old != config_toml {
                let diff: Vec<String> = old
                    .lines()
                    .zip(config_toml.lines())
                    .filter(|(a, b)| a != b)
                    .take(5)
                    .map(|(a, b)| format!("  run has `{a}`, now `{b}`"))
                    .collect();
                bail!(
                    "{} belongs to a run with another configuration; resume with the same \
                     config or choose a new run folder. First differences:\n{}",
                    root.display(),
                    diff.join("\n")
                );
            }
        } else {
            std::fs::create_dir_all(root)
                .with_context(|| format!("creating the run folder {}", root.display()))?;
            write_atomic(&cfg_path, config_toml.as_bytes())?;
        }
        for sub in ["checkpoints", "samples"] {
            std::fs::create_dir_all(root.join(sub))?;
        }
        // Step folders that a killed job left half written.
        for e in std::fs::read_dir(root.join("checkpoints"))? {
            let e = e?;
            if e.file_name().to_string_lossy().starts_with('.') {
                std::fs::remove_dir_all(e.path()).ok();
            }
        }
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    pub fn config_sha256(&self) -> anyhow::Result<String> {
        Ok(sha256_hex(&std::fs::read(self.root.join("config.toml"))?))
    }

    /// The newest complete step folder, if any.
    pub fn latest(&self) -> anyhow::Result<Option<PathBuf>> {
        let p = self.root.join("latest");
        if !p.exists() {
            return Ok(None);
        }
        let name = std::fs::read_to_string(&p)?;
        let dir = self.root.join("checkpoints").join(name.trim());
        if !dir.join("state.json").exists() {
            bail!(
                "{} names {}, which is not a complete step folder",
                p.display(),
                dir.display()
            );
        }
        Ok(Some(dir))
    }

    /// Write step folder `step` by `fill(tmp_dir)`, publish it by renaming, point `latest`
    /// at it, and keep the newest `keep` (0: all).
    pub fn checkpoint(
        &self,
        step: u64,
        keep: usize,
        fill: impl FnOnce(&Path) -> anyhow::Result<()>,
    ) -> anyhow::Result<PathBuf> {
        let ckpts = self.root.join("checkpoints");
        let name = step_name(step);
        let tmp = ckpts.join(format!(".{name}.tmp"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)?;
        fill(&tmp)?;
        let dir = ckpts.join(&name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::rename(&tmp, &dir)?;
        write_atomic(&self.root.join("latest"), name.as_bytes())?;
        if keep > 0 {
            let mut steps: Vec<String> = std::fs::read_dir(&ckpts)?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("step-"))
                .collect();
            steps.sort();
            for old in steps.iter().take(steps.len().saturating_sub(keep)) {
                std::fs::remove_dir_all(ckpts.join(old)).ok();
            }
        }
        Ok(dir)
    }

    pub fn metrics_path(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }

    /// Drop metric lines of steps after `step` (written after the checkpoint a run resumes
    /// from) and return the lines kept.
    pub fn truncate_metrics(&self, step: u64) -> anyhow::Result<Vec<serde_json::Value>> {
        let p = self.metrics_path();
        if !p.exists() {
            return Ok(Vec::new());
        }
        let f = std::fs::File::open(&p)?;
        let mut kept = Vec::new();
        let mut text = String::new();
        for line in std::io::BufReader::new(f).lines() {
            let line = line?;
            // A line cut by a kill does not parse; it is dropped with the later ones.
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                break;
            };
            if v["step"].as_u64().unwrap_or(u64::MAX) > step {
                break;
            }
            text.push_str(&line);
            text.push('\n');
            kept.push(v);
        }
        write_atomic(&p, text.as_bytes())?;
        Ok(kept)
    }

    pub fn append_metrics(&self, v: &serde_json::Value) -> anyhow::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.metrics_path())?;
        writeln!(f, "{v}")?;
        Ok(())
    }

    pub fn sample_path(&self, step: u64) -> PathBuf {
        self.root
            .join("samples")
            .join(format!("{}.png", step_name(step)))
    }
}

/// Read a step folder's `state.json`.
pub fn read_state(step_dir: &Path) -> anyhow::Result<TrainState> {
    let p = step_dir.join("state.json");
    let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a training state", p.display()))
}
