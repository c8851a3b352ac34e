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
    /// sha256 of the run's identity: the resolved config without the paths that may move
    /// (see [`RunDir::open`]).
    pub config_sha256: String,
    /// The dataset's identity ([`dataset_identity`]); empty in states written before it.
    #[serde(default)]
    pub dataset_sha256: String,
    /// LeCAM's logit EMAs (GAN runs).
    #[serde(default)]
    pub lecam: crate::losses::gan::LeCam,
}

/// The identity of a shard folder: what its shards hold (file names, row counts, sha256),
/// not where it lies, so a run resumes after its data moves to another disk or behind a
/// symlink, and refuses to resume on other data at the same path.
pub fn dataset_identity(folder: &maetok_pipeline::shard::reader::ShardFolder) -> String {
    identity_of_files(
        folder
            .manifest()
            .shards
            .iter()
            .map(|s| (s.file.as_str(), s.rows, s.sha256.as_str())),
    )
}

/// The same for a latent folder (the SiT runs' dataset).
pub fn latent_dataset_identity(folder: &maetok_pipeline::shard::latent::LatentFolder) -> String {
    identity_of_files(
        folder
            .manifest()
            .shards
            .iter()
            .map(|s| (s.file.as_str(), s.rows, s.sha256.as_str())),
    )
}

fn identity_of_files<'a>(files: impl Iterator<Item = (&'a str, u64, &'a str)>) -> String {
    let shards: Vec<(&str, u64, &str)> = files.collect();
    sha256_hex(
        serde_json::to_string(&shards)
            .unwrap_or_default()
            .as_bytes(),
    )
}

/// Which step folders a run keeps: the newest `keep` (0: all of them), and besides those
/// every `milestone_every`-th step (0: none), for runs of millions of steps whose
/// intermediate models are evaluated later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub keep: usize,
    pub milestone_every: u64,
}

impl Retention {
    pub fn is_milestone(&self, step: u64) -> bool {
        self.milestone_every > 0 && step > 0 && step.is_multiple_of(self.milestone_every)
    }
}

/// The step of a step folder's name (`step-0001000` → 1000).
fn step_of(name: &str) -> Option<u64> {
    name.strip_prefix("step-")?.parse().ok()
}

/// An open run folder; rank 0 of a job holds its lock (`.lock`, removed when dropped)
/// and is the only one to write in it.
pub struct RunDir {
    pub root: PathBuf,
    /// sha256 of the identity text given to [`RunDir::open`].
    identity_sha: String,
    _lock: Option<maetok_nn::lock::LockFile>,
}

/// A checkpoint's (and sample grid's) folder name for `step`: the one spelling of it.
pub fn step_name(step: u64) -> String {
    format!("step-{step:07}")
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

use maetok_nn::atomic::write as write_atomic;

impl RunDir {
    /// Open `root` for a run whose resolved config is `config_toml` and whose identity
    /// (that config with the paths that may move, such as the shard folder, left out) is
    /// `identity`. Takes the folder's lock: a second job on the same run folder is refused.
    ///
    /// A new run writes `config.toml`. An existing run with a complete step folder must
    /// have the same identity (a changed config would not continue the same run); one that
    /// stopped before its first step folder starts again under the new config.
    pub fn open(
        root: &Path,
        config_toml: &str,
        identity: impl Fn(&str) -> anyhow::Result<String>,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(root)
            .with_context(|| format!("creating the run folder {}", root.display()))?;
        let lock_path = root.join(".lock");
        let Some(lock) = maetok_nn::lock::LockFile::try_acquire(&lock_path)
            .with_context(|| format!("creating {}", lock_path.display()))?
        else {
            bail!(
                "another job is training in {} (its lock file `.lock` is held); wait for it \
                 or choose another run folder",
                root.display()
            );
        };
        let mut run = Self {
            root: root.to_path_buf(),
            identity_sha: String::new(),
            _lock: Some(lock),
        };
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
        let now = identity(config_toml)?;
        let cfg_path = root.join("config.toml");
        if cfg_path.exists() {
            let text = std::fs::read_to_string(&cfg_path)
                .with_context(|| format!("reading {}", cfg_path.display()))?;
            let old = identity(&text).with_context(|| format!("{}", cfg_path.display()))?;
            if old != now {
                if run.find_latest()?.0.is_some() {
                    let diff: Vec<String> = old
                        .lines()
                        .zip(now.lines())
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
                tracing::warn!(
                    "{}: no step folder yet, so the run starts again under the new config",
                    root.display()
                );
                std::fs::remove_file(run.metrics_path()).ok();
            }
        }
        // The config as resolved now (its paths may have moved since).
        write_atomic(&cfg_path, config_toml.as_bytes())?;
        run.identity_sha = sha256_hex(now.as_bytes());
        Ok(run)
    }

    /// The run folder as the other ranks of a job see it, once rank 0 has opened it: they
    /// read its step folders (to resume from the same one) and write nothing.
    pub fn follow(
        root: &Path,
        config_toml: &str,
        identity: impl Fn(&str) -> anyhow::Result<String>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            root: root.to_path_buf(),
            identity_sha: sha256_hex(identity(config_toml)?.as_bytes()),
            _lock: None,
        })
    }

    /// The folder of step `step` (complete once `checkpoint` has returned it).
    pub fn step_dir(&self, step: u64) -> PathBuf {
        self.root.join("checkpoints").join(step_name(step))
    }

    /// sha256 of the run's identity (what a step folder's state records).
    pub fn config_sha256(&self) -> anyhow::Result<String> {
        Ok(self.identity_sha.clone())
    }

    /// The newest complete step folder, if any: the one `latest` names, or, when `latest`
    /// is missing or names a folder that is not complete, the newest complete one there is
    /// (with a warning), so a lost `latest` never restarts a run from step 0.
    pub fn latest(&self) -> anyhow::Result<Option<PathBuf>> {
        let (dir, warning) = self.find_latest()?;
        if let Some(w) = warning {
            tracing::warn!("{w}");
        }
        Ok(dir)
    }

    /// [`RunDir::latest`] without logging: the folder, and the warning a fallback deserves.
    fn find_latest(&self) -> anyhow::Result<(Option<PathBuf>, Option<String>)> {
        let p = self.root.join("latest");
        let ckpts = self.root.join("checkpoints");
        let mut warning = None;
        if p.exists() {
            let name = std::fs::read_to_string(&p)?;
            let dir = ckpts.join(name.trim());
            if dir.join("state.json").exists() {
                return Ok((Some(dir), None));
            }
            warning = Some(format!(
                "{} names {}, which is not a complete step folder; using the newest complete one",
                p.display(),
                dir.display()
            ));
        }
        let Some(newest) = self
            .step_folders()?
            .into_iter()
            .rfind(|n| ckpts.join(n).join("state.json").exists())
        else {
            return Ok((None, warning));
        };
        let dir = ckpts.join(newest);
        let warning = warning.unwrap_or_else(|| {
            format!(
                "{}: no `latest` file; resuming from the newest complete step folder {}",
                self.root.display(),
                dir.display()
            )
        });
        Ok((Some(dir), Some(warning)))
    }

    /// The latest step folder and its state, checked to belong to this run: written by
    /// `stage`, under this run's identity, on the dataset `dataset_sha` (`data` names where
    /// the dataset was looked for, in the error).
    pub fn resume_point(
        &self,
        stage: &str,
        dataset_sha: &str,
        data: &str,
    ) -> anyhow::Result<Option<(PathBuf, TrainState)>> {
        let Some(dir) = self.latest()? else {
            return Ok(None);
        };
        let st = read_state(&dir)?;
        if st.stage != stage {
            bail!(
                "{} holds a `{}` run; this is `train {stage}`",
                self.root.display(),
                st.stage
            );
        }
        if st.config_sha256 != self.identity_sha {
            bail!(
                "{}: state.json was written under another config.toml",
                dir.display()
            );
        }
        if !st.dataset_sha256.is_empty() && st.dataset_sha256 != dataset_sha {
            bail!(
                "{}: the run was trained on another dataset than {data} (their files, row \
                 counts or hashes differ); point it at the run's dataset, wherever it now lies",
                dir.display()
            );
        }
        tracing::info!("resuming {stage} from {} (step {})", dir.display(), st.step);
        Ok(Some((dir, st)))
    }

    /// The names of the step folders (`step-NNNNNNN`, complete or not), oldest first.
    fn step_folders(&self) -> std::io::Result<Vec<String>> {
        let mut steps: Vec<String> = match std::fs::read_dir(self.root.join("checkpoints")) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("step-"))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        steps.sort();
        Ok(steps)
    }

    /// Write step folder `step` by `fill(tmp_dir)`, publish it by renaming, point `latest`
    /// at it, and delete the step folders `keep` no longer keeps.
    pub fn checkpoint(
        &self,
        step: u64,
        keep: Retention,
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
        if keep.keep > 0 {
            // Milestones are not counted among the newest `keep` and never deleted.
            let steps: Vec<String> = self
                .step_folders()?
                .into_iter()
                .filter(|n| !step_of(n).is_some_and(|s| keep.is_milestone(s)))
                .collect();
            for old in steps.iter().take(steps.len().saturating_sub(keep.keep)) {
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
