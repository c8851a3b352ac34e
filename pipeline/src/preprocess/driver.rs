//! The staged preprocess job: one reader thread walks the inputs in order, a rayon pool
//! decodes / crops / computes targets, and the calling thread writes results in input order
//! into shards. A window of tokens bounds the samples in flight (reader → pool → reorder
//! buffer), so memory does not grow with the dataset.
//!
//! Crash safety and resume: shards are committed atomically, and after each one the
//! manifest records the input cursor and the counts up to it, and the length of the rejects
//! log that goes with them. A rerun with the same settings deletes anything past that point
//! (a `.tmp` shard, a shard committed just before the kill but not yet in the manifest,
//! log lines past the recorded length) and continues from the cursor. Since the event
//! order, the per-view randomness and the shard cuts depend only on the inputs and
//! settings, the finished shards equal an uninterrupted run's, byte for byte.

use crate::preprocess::config::Duplicates;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crossbeam_channel::bounded;

use super::config::{ConfigError, PreprocessConfig};
use super::process::{process, Outcome};
use super::progress::{cpu_seconds, peak_rss_bytes, Progress};
use super::teach::{run_teachers, Loaded, Storage};
use crate::caption::{ClipBpe, CONTEXT_LEN};
use crate::shard::manifest::TextInfo;
use crate::shard::manifest::{
    ColumnInfo, Manifest, RootInfo, SourceInfo, Stats, TeacherInfo, FORMAT, INT8_ENCODING,
};
use crate::shard::schema::{arrow_schema, SchemaSpec, SCHEMA_VERSION};
use crate::shard::writer::{ShardWriter, WriteOptions};
use crate::shard::{rejects_file_name, shard_file_name, ShardError};
use crate::source::{Cursor, Dataset, Event, Reject, SourceError, SourceOptions};

/// How this process runs the job (does not change the output).
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub output: PathBuf,
    /// Decode-pool threads (0 = all cores).
    pub threads: usize,
    pub node_rank: usize,
    pub num_nodes: usize,
    pub show_progress: bool,
}

impl RunOptions {
    /// This process's node rank when the job has several nodes (names per node), else `None`.
    pub fn node(&self) -> Option<usize> {
        (self.num_nodes > 1).then_some(self.node_rank)
    }
}

/// Why a job could not run or finish. Finished shards stay valid in every case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PreprocessError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Shard(#[from] ShardError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("another preprocess job is writing {0} (lock file held)")]
    Locked(PathBuf),
    #[error("{path}: {message}")]
    Output { path: PathBuf, message: String },
    #[error("`--node-rank {rank}` must be below `--num-nodes {nodes}`")]
    Node { rank: usize, nodes: usize },
    #[error(transparent)]
    Teacher(#[from] maetok_teachers::TeacherError),
    #[error("{0}")]
    Threads(String),
    #[error("duplicate key `{key}` ({origin}): an earlier sample has it (duplicates = \"error\"; \"skip\" keeps the first, \"suffix\" renames)")]
    DuplicateKey { key: String, origin: String },
    #[error("internal error: {0}")]
    Internal(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PreprocessError + '_ {
    move |source| PreprocessError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What a job did, for the final report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub output: PathBuf,
    pub manifest: PathBuf,
    pub shards: usize,
    pub stats: Stats,
    /// Images already done by an earlier, interrupted run.
    pub resumed_images: u64,
    /// The job had already finished; nothing was done.
    pub already_complete: bool,
    pub elapsed_s: f64,
    /// Images per second of this run.
    pub images_per_s: f64,
    /// CPU seconds (all threads) of this run, process start-up excluded.
    pub cpu_s: f64,
    pub peak_rss_bytes: Option<u64>,
    pub threads: usize,
}

/// One in-order step the writer consumes.
struct Step {
    outcome: Option<Outcome>,
    after: Cursor,
    bytes: u64,
}

impl Step {
    fn views(&self) -> usize {
        match &self.outcome {
            Some(Outcome::Rows { rows, .. }) => rows.len(),
            _ => 0,
        }
    }
}

/// Runs (or resumes) the job.
pub fn run(cfg: &PreprocessConfig, opts: &RunOptions) -> Result<Summary, PreprocessError> {
    cfg.validate()?;
    if opts.num_nodes == 0 || opts.node_rank >= opts.num_nodes {
        return Err(PreprocessError::Node {
            rank: opts.node_rank,
            nodes: opts.num_nodes,
        });
    }
    let threads =
        crate::threads::resolve("--threads", opts.threads).map_err(PreprocessError::Threads)?;
    let started = Instant::now();
    let cpu_start = cpu_seconds();
    let out = &opts.output;
    std::fs::create_dir_all(out).map_err(io(out))?;
    let node = opts.node();
    let lock_path = out.join(format!(
        ".lock{}",
        node.map(|r| format!("-r{r:03}")).unwrap_or_default()
    ));
    // Held until the job returns (removed then, also on an error).
    let _lock = maetok_nn::lock::LockFile::try_acquire(&lock_path)
        .map_err(io(&lock_path))?
        .ok_or_else(|| PreprocessError::Locked(out.clone()))?;
    let side = out.join(crate::shard::SIDECAR);
    std::fs::create_dir_all(&side).map_err(io(&side))?;

    let dataset = Dataset::open(
        &cfg.inputs,
        SourceOptions {
            layout: cfg.layout,
            labels_csv: cfg.labels_csv.clone(),
            caption_fields: cfg.caption_fields.clone(),
        },
        opts.node_rank,
        opts.num_nodes,
    )?;
    let manifest_path = crate::shard::node_manifest_path(out, node);
    let teachers = load_teachers(cfg)?;
    let bpe = load_bpe(cfg)?;
    let fresh = fresh_manifest(cfg, opts, &dataset, &teachers, bpe.as_ref().map(|b| &b.1));
    let manifest = if manifest_path.exists() {
        let m = Manifest::read(&manifest_path)?;
        if m.config_hash != fresh.config_hash || m.nodes != fresh.nodes {
            return Err(PreprocessError::Output {
                path: manifest_path,
                message: "holds a different job (other inputs, settings or node); use another output folder".into(),
            });
        }
        if m.teachers != fresh.teachers || m.text != fresh.text {
            return Err(PreprocessError::Output {
                path: manifest_path,
                message: "was written with other teacher weights or caption vocabulary (a file \
                          changed since the job started); restore it or use another output folder"
                    .into(),
            });
        }
        if m.source.listing_hash != fresh.source.listing_hash {
            return Err(PreprocessError::Output {
                path: manifest_path,
                message:
                    "the inputs changed since this job started (files added, removed or resized); \
                          finish it on the original inputs or use another output folder"
                        .into(),
            });
        }
        m
    } else {
        let strays = shard_files(out, node)?;
        if !strays.is_empty() {
            return Err(PreprocessError::Output {
                path: out.clone(),
                message: format!(
                    "has shard files ({}) but no {}; refusing to overwrite them",
                    strays[0],
                    manifest_path.display()
                ),
            });
        }
        fresh
    };
    let resumed_images = manifest.stats.images;
    if manifest.complete {
        tracing::info!(manifest = %manifest_path.display(), "job already complete");
        return Ok(summary(
            out,
            &manifest_path,
            &manifest,
            resumed_images,
            true,
            (started, cpu_start),
            threads,
        ));
    }
    discard_uncommitted(out, node, &manifest)?;
    let rejects_path = out.join(&manifest.rejects_file);
    let rejects_log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&rejects_path)
        .map_err(io(&rejects_path))?;
    rejects_log
        .set_len(manifest.rejects_bytes)
        .map_err(io(&rejects_path))?;
    manifest.write(&manifest_path)?;
    if resumed_images > 0 || manifest.cursor != Cursor::default() {
        tracing::info!(
            images = resumed_images,
            shards = manifest.shards.len(),
            "resuming an interrupted job"
        );
    }

    let done_bytes = manifest.stats.input_bytes;
    let keys = committed_keys(out, &manifest)?;
    let mut writer = Writer {
        cfg,
        out,
        node,
        spec: manifest.schema_spec(),
        write_opts: WriteOptions {
            zstd_level: cfg.zstd_level,
            row_group_rows: cfg.row_group_rows,
            batch_rows: 64,
        },
        manifest_path: manifest_path.clone(),
        manifest,
        shard: None,
        pending_log: Vec::new(),
        keys,
        rejects_log,
        progress: Progress::new(
            dataset.total_bytes(),
            done_bytes,
            resumed_images,
            opts.show_progress,
        ),
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("decode-{i}"))
        .build()
        .expect("thread pool");
    // Enough samples in flight for the teacher stage to fill its batches while the pool
    // keeps decoding the next ones.
    let batch_views = teachers.iter().map(|t| t.batch_size).max().unwrap_or(0);
    let window = threads * 4 + 8 + 3 * batch_views;
    let start = writer.manifest.cursor;
    let bpe = bpe.map(|b| b.0);
    let result = pipeline(
        &dataset,
        start,
        cfg,
        &pool,
        window,
        teachers,
        bpe.as_ref(),
        &mut writer,
    );
    writer.progress.finish();
    result?;
    writer.finish()?;
    tracing::info!(manifest = %manifest_path.display(), "preprocess complete");
    Ok(summary(
        out,
        &manifest_path,
        &writer.manifest,
        resumed_images,
        false,
        (started, cpu_start),
        threads,
    ))
}

/// Reader thread → rayon pool → orderer (input order, batches of views) → teacher thread →
/// writer (this thread), with at most `window` samples in flight. Bounded queues between
/// the stages let decoding, the teachers and writing overlap.
#[allow(clippy::too_many_arguments)]
fn pipeline(
    dataset: &Dataset,
    start: Cursor,
    cfg: &PreprocessConfig,
    pool: &rayon::ThreadPool,
    window: usize,
    teachers: Vec<Loaded>,
    bpe: Option<&ClipBpe>,
    writer: &mut Writer,
) -> Result<(), PreprocessError> {
    let (token_tx, token_rx) = bounded::<()>(window);
    for _ in 0..window {
        token_tx.send(()).expect("capacity is window");
    }
    let (result_tx, result_rx) = bounded::<(u64, Step)>(window);
    let (batch_tx, batch_rx) = bounded::<Vec<Step>>(2);
    let (done_tx, done_rx) = bounded::<Result<Vec<Step>, PreprocessError>>(2);
    // Views per teacher batch (1: no teachers, pass each step straight through).
    let batch_views = teachers.iter().map(|t| t.batch_size).max().unwrap_or(1);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let reader_stop = &stop;
        let reader = s.spawn(move || {
            pool.in_place_scope(|scope| {
                let mut seq = 0u64;
                dataset.for_each_event(start, |pos| {
                    if reader_stop.load(Ordering::Relaxed) || token_rx.recv().is_err() {
                        return false;
                    }
                    let this = seq;
                    seq += 1;
                    let (after, bytes) = (pos.after, pos.bytes);
                    match pos.event {
                        Some(Event::Sample(sample)) => {
                            let tx = result_tx.clone();
                            scope.spawn(move |_| {
                                let outcome = process_guarded(sample, cfg, bpe);
                                let _ = tx.send((
                                    this,
                                    Step {
                                        outcome: Some(outcome),
                                        after,
                                        bytes,
                                    },
                                ));
                            });
                            true
                        }
                        other => {
                            let outcome = other.map(|e| match e {
                                Event::Reject(r) => Outcome::Reject(r),
                                Event::Sample(_) => unreachable!("handled above"),
                            });
                            result_tx
                                .send((
                                    this,
                                    Step {
                                        outcome,
                                        after,
                                        bytes,
                                    },
                                ))
                                .is_ok()
                        }
                    }
                });
            });
            drop(result_tx);
        });
        // Orderer: results back into input order, cut into batches of views. A batch also
        // ends where the writer will close a shard (same rule: the first image at or past
        // `shard_rows`), so batches never straddle a commit point: a resumed job, which
        // restarts at one, forms exactly the batches of an uninterrupted run, and libtorch
        // (whose CPU kernels may round differently for other batch shapes) gives the same
        // bytes.
        let shard_rows = cfg.shard_rows;
        let orderer = s.spawn(move || {
            let mut next = 0u64;
            let mut reorder: BTreeMap<u64, Step> = BTreeMap::new();
            let (mut batch, mut views, mut in_shard) = (Vec::new(), 0usize, 0usize);
            for (seq, step) in result_rx.iter() {
                reorder.insert(seq, step);
                while let Some(step) = reorder.remove(&next) {
                    next += 1;
                    views += step.views();
                    in_shard += step.views();
                    batch.push(step);
                    let shard_ends = in_shard >= shard_rows;
                    if shard_ends {
                        in_shard = 0;
                    }
                    if views >= batch_views || shard_ends {
                        views = 0;
                        if batch_tx.send(std::mem::take(&mut batch)).is_err() {
                            return false;
                        }
                    }
                }
            }
            let complete = reorder.is_empty();
            complete && (batch.is_empty() || batch_tx.send(batch).is_ok())
        });
        // Teacher stage: owns the teachers (libtorch modules stay on one thread).
        let teacher_stage = s.spawn(move || {
            for mut batch in batch_rx.iter() {
                let result = attach_features(&teachers, &mut batch).map(|()| batch);
                let failed = result.is_err();
                if done_tx.send(result).is_err() || failed {
                    break;
                }
            }
        });
        // The writer: consume batches in input order.
        let outcome = (|| {
            for batch in done_rx.iter() {
                for step in batch? {
                    writer.handle(step)?;
                    let _ = token_tx.send(());
                }
            }
            Ok(())
        })();
        if outcome.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        // Unblock the reader (no more tokens) and the other stages (no receiver) on error.
        drop(token_tx);
        drop(done_rx);
        let reader_ok = reader.join().is_ok();
        let ordered_all = orderer.join().unwrap_or(false);
        let teachers_ok = teacher_stage.join().is_ok();
        match outcome {
            Ok(()) if !reader_ok || !ordered_all || !teachers_ok => Err(PreprocessError::Internal(
                "the input reader stopped before the end of the input; the committed shards are \
                 kept, rerun the same command to resume"
                    .into(),
            )),
            other => other,
        }
    })
}

/// The caption tokenizer, if configured, and what the manifest records about it.
fn load_bpe(cfg: &PreprocessConfig) -> Result<Option<(ClipBpe, TextInfo)>, PreprocessError> {
    let Some(path) = &cfg.caption_bpe else {
        return Ok(None);
    };
    let bpe = ClipBpe::from_file(path).map_err(|e| PreprocessError::Output {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let sha = maetok_nn::weights::file_sha256(path).map_err(io(path))?;
    let info = TextInfo {
        tokenizer: "open_clip_bpe".into(),
        vocab_file: path.display().to_string(),
        vocab_sha256: sha,
        vocab_size: bpe.vocab_size(),
        context_len: CONTEXT_LEN,
    };
    Ok(Some((bpe, info)))
}

/// Build the configured teachers (weights read and resampled once, before any work).
fn load_teachers(cfg: &PreprocessConfig) -> Result<Vec<Loaded>, PreprocessError> {
    let mut out = Vec::with_capacity(cfg.teachers.len());
    for t in &cfg.teachers {
        let spec = t.spec(cfg.resolution)?;
        let started = Instant::now();
        let teacher = maetok_teachers::build(&spec)?;
        tracing::info!(
            teacher = %t.name,
            weights = %t.weights.display(),
            device = %t.device,
            dim = teacher.dim(),
            grid = ?teacher.grid(),
            secs = format!("{:.1}", started.elapsed().as_secs_f64()),
            "teacher loaded"
        );
        out.push(Loaded {
            teacher,
            storage: t.storage,
            batch_size: t.batch_size,
            spec,
        });
    }
    Ok(out)
}

/// Run the teachers over every view of `batch` and store the features in its rows.
fn attach_features(teachers: &[Loaded], batch: &mut [Step]) -> Result<(), PreprocessError> {
    if teachers.is_empty() {
        return Ok(());
    }
    let pixels: Vec<&crate::image::Rgb8> = batch
        .iter()
        .flat_map(|s| match &s.outcome {
            Some(Outcome::Rows { pixels, .. }) => pixels.iter().collect::<Vec<_>>(),
            _ => Vec::new(),
        })
        .collect();
    if pixels.is_empty() {
        return Ok(());
    }
    let mut features = run_teachers(teachers, &pixels)?.into_iter();
    for step in batch.iter_mut() {
        if let Some(Outcome::Rows { rows, pixels, .. }) = &mut step.outcome {
            for row in rows.iter_mut() {
                row.teachers = features.next().expect("one feature set per view");
            }
            pixels.clear();
        }
    }
    Ok(())
}

/// [`process`], with a panic (a bug on some unforeseen input) turned into a counted
/// `internal_error` reject: one bad image must neither abort the job nor stall the
/// in-order writer waiting for a result that would never come.
fn process_guarded(
    sample: crate::source::RawSample,
    cfg: &PreprocessConfig,
    bpe: Option<&ClipBpe>,
) -> Outcome {
    let (key, origin) = (sample.key.clone(), sample.origin.clone());
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| process(sample, cfg, bpe)))
        .unwrap_or_else(|panic| {
            let detail = maetok_teachers::teacher::panic_message(panic.as_ref());
            tracing::error!(%key, %detail, "processing panicked; sample skipped");
            Outcome::Reject(Reject {
                key,
                origin,
                reason: "internal_error".into(),
                detail,
            })
        })
}

/// The in-order consumer: shard writing, counts, rejects log, manifest commits.
struct Writer<'a> {
    cfg: &'a PreprocessConfig,
    out: &'a Path,
    node: Option<usize>,
    spec: SchemaSpec,
    write_opts: WriteOptions,
    manifest_path: PathBuf,
    manifest: Manifest,
    shard: Option<ShardWriter>,
    /// Rejects-log lines not yet committed with a shard.
    pending_log: Vec<u8>,
    rejects_log: File,
    progress: Progress,
    /// Keys written so far (this node's), so a key is stored once whatever the inputs repeat.
    keys: std::collections::HashSet<String>,
}

#[derive(serde::Serialize)]
struct LogLine<'a> {
    key: &'a str,
    origin: &'a str,
    reason: &'a str,
    action: &'a str,
    detail: &'a str,
}

impl Writer<'_> {
    fn log(&mut self, key: &str, origin: &str, reason: &str, action: &str, detail: &str) {
        serde_json::to_writer(
            &mut self.pending_log,
            &LogLine {
                key,
                origin,
                reason,
                action,
                detail,
            },
        )
        .expect("log line");
        self.pending_log.push(b'\n');
    }

    /// A skipped input: counted by reason and logged.
    fn skip(&mut self, key: &str, origin: &str, reason: &str, detail: &str) {
        *self
            .manifest
            .stats
            .rejects
            .entry(reason.to_string())
            .or_default() += 1;
        tracing::debug!(%key, %reason, %detail, "skipped");
        self.log(key, origin, reason, "skipped", detail);
    }

    /// A kept image with a problem: counted by reason and logged as `kept`.
    fn note(&mut self, key: &str, origin: &str, reason: &str, detail: &str) {
        *self
            .manifest
            .stats
            .kept_with_notes
            .entry(reason.to_string())
            .or_default() += 1;
        self.log(key, origin, reason, "kept", detail);
    }

    fn handle(&mut self, step: Step) -> Result<(), PreprocessError> {
        self.manifest.stats.input_bytes += step.bytes;
        self.manifest.cursor = step.after;
        let mut images = 0;
        match step.outcome {
            Some(Outcome::Rows {
                mut rows,
                converted,
                caption_missing,
                notes,
                mut key,
                origin,
                ..
            }) => {
                if !self.keys.insert(key.clone()) {
                    match self.cfg.duplicates {
                        Duplicates::Error => {
                            return Err(PreprocessError::DuplicateKey { key, origin });
                        }
                        Duplicates::Skip => {
                            if !self.manifest.stats.rejects.contains_key("duplicate_key") {
                                tracing::warn!(
                                    "duplicate key `{key}` ({origin}): skipped, keeping the first; \
                                     every duplicate is counted in the manifest and the rejects log \
                                     (--duplicates error|suffix to change)"
                                );
                            }
                            let detail = "an earlier sample has this key; kept the first";
                            self.skip(&key, &origin, "duplicate_key", detail);
                            self.progress.advance(step.bytes, 0);
                            return Ok(());
                        }
                        Duplicates::Suffix => {
                            let new = (2..)
                                .map(|n| format!("{key}~{n}"))
                                .find(|k| !self.keys.contains(k))
                                .expect("some suffix is free");
                            self.keys.insert(new.clone());
                            self.note(
                                &new,
                                &origin,
                                "duplicate_key_renamed",
                                &format!("renamed from `{key}`, which an earlier sample has"),
                            );
                            for r in &mut rows {
                                r.key = new.clone();
                            }
                            key = new;
                        }
                    }
                }
                let stats = &mut self.manifest.stats;
                images = 1;
                stats.images += 1;
                stats.rows += rows.len() as u64;
                if let Some(mode) = converted {
                    *stats.converted.entry(mode.to_string()).or_default() += 1;
                }
                if caption_missing {
                    stats.missing_captions += 1;
                    self.log(
                        &key,
                        &origin,
                        "missing_caption",
                        "kept",
                        "no .txt caption and no caption field in .json",
                    );
                }
                for (reason, detail) in &notes {
                    self.note(&key, &origin, reason, detail);
                }
                let label = rows.first().and_then(|r| r.label);
                if let (Some(l), Some(n)) = (label, self.cfg.num_classes) {
                    if l as usize >= n {
                        for r in &mut rows {
                            r.label = None;
                        }
                        let detail =
                            format!("label {l} is outside 0..{n} (num_classes); stored null");
                        self.note(&key, &origin, "bad_label", &detail);
                    }
                }
                if self.shard.is_none() {
                    let name = shard_file_name(self.manifest.shards.len(), self.node);
                    self.shard = Some(ShardWriter::create(
                        self.out,
                        &name,
                        &self.spec,
                        &self.write_opts,
                    )?);
                }
                let shard = self.shard.as_mut().expect("opened above");
                shard.push_image(rows)?;
                super::fault::point("image");
                if shard.rows() >= self.cfg.shard_rows as u64 {
                    self.commit_shard()?;
                }
            }
            Some(Outcome::Reject(Reject {
                key,
                origin,
                reason,
                detail,
            })) => self.skip(&key, &origin, &reason, &detail),
            None => {}
        }
        self.progress.advance(step.bytes, images);
        Ok(())
    }

    /// Appends the pending log lines durably and returns the log's new length.
    fn flush_log(&mut self) -> Result<(), PreprocessError> {
        let path = self.out.join(&self.manifest.rejects_file);
        if !self.pending_log.is_empty() {
            self.rejects_log
                .write_all(&self.pending_log)
                .map_err(io(&path))?;
            self.rejects_log.sync_data().map_err(io(&path))?;
            self.manifest.rejects_bytes += self.pending_log.len() as u64;
            self.pending_log.clear();
        }
        Ok(())
    }

    /// Shard, then log, then manifest: the manifest only ever names finished work.
    fn commit_shard(&mut self) -> Result<(), PreprocessError> {
        let Some(shard) = self.shard.take() else {
            return Ok(());
        };
        let info = shard.finish()?;
        super::fault::point("shard_renamed");
        tracing::info!(shard = %info.file, rows = info.rows, bytes = info.bytes, "shard committed");
        self.flush_log()?;
        self.manifest.stats.output_bytes += info.bytes;
        self.manifest.shards.push(info);
        self.manifest.write(&self.manifest_path)?;
        super::fault::point("manifest_written");
        Ok(())
    }

    fn finish(&mut self) -> Result<(), PreprocessError> {
        self.commit_shard()?;
        self.flush_log()?;
        self.manifest.complete = true;
        self.manifest.write(&self.manifest_path)?;
        Ok(())
    }
}

/// The manifest of a job that has done nothing yet.
fn fresh_manifest(
    cfg: &PreprocessConfig,
    opts: &RunOptions,
    ds: &Dataset,
    vit: &[Loaded],
    text: Option<&TextInfo>,
) -> Manifest {
    let node = opts.node();
    let grid = cfg.resolution / 16;
    let mut teachers = if cfg.hog {
        vec![TeacherInfo {
            name: "hog".into(),
            dim: maetok_teachers::hog::DIM,
            grid: [grid, grid],
            dtype: "float16".into(),
            encoding: "f16".into(),
            config: maetok_teachers::hog_teacher::description(),
            weights_sha256: None,
        }]
    } else {
        Vec::new()
    };
    for t in vit {
        let describe = t.teacher.describe();
        let (gh, gw) = t.teacher.grid();
        let int8 = t.storage == Storage::Int8;
        teachers.push(TeacherInfo {
            name: t.teacher.name().to_string(),
            dim: t.teacher.dim() as usize,
            grid: [gh as usize, gw as usize],
            dtype: if int8 { "int8" } else { "float16" }.into(),
            encoding: if int8 { INT8_ENCODING } else { "f16" }.into(),
            weights_sha256: describe["weights_sha256"].as_str().map(String::from),
            config: describe,
        });
    }
    let mut m = Manifest {
        format: FORMAT.into(),
        schema_version: SCHEMA_VERSION,
        complete: false,
        created_by: format!("maetok {}", env!("CARGO_PKG_VERSION")),
        config_hash: cfg.content_hash(opts.num_nodes),
        nodes: vec![opts.node_rank],
        num_nodes: opts.num_nodes,
        source: SourceInfo {
            inputs: cfg.inputs.clone(),
            roots: ds
                .roots
                .iter()
                .map(|r| RootInfo {
                    path: r.path.display().to_string(),
                    kind: r.kind.clone(),
                })
                .collect(),
            total_units: ds.total_units,
            units: ds.units.len(),
            listing_hash: ds.listing_hash.clone(),
            label_set: ds.label_set.clone(),
        },
        preprocess: serde_json::to_value(cfg).expect("config serialises"),
        teachers,
        text: text.cloned(),
        columns: Vec::new(),
        shards: Vec::new(),
        cursor: Cursor::default(),
        rejects_file: rejects_file_name(node),
        rejects_bytes: 0,
        stats: Stats::default(),
    };
    m.columns = arrow_schema(&m.schema_spec())
        .fields()
        .iter()
        .map(|f| ColumnInfo {
            name: f.name().clone(),
            data_type: f.data_type().to_string(),
        })
        .collect();
    m
}

/// This node's shard files in `dir` (committed or temporary), sorted.
fn shard_files(dir: &Path, node: Option<usize>) -> Result<Vec<String>, PreprocessError> {
    // Single-node names have a digit right after "shard-"; node R's start "shard-rRRR-".
    let ours = |n: &str| match node {
        None => n
            .strip_prefix("shard-")
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit())),
        Some(r) => n.starts_with(&format!("shard-r{r:03}-")),
    };
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| ours(n) && (n.ends_with(".parquet") || n.ends_with(".parquet.tmp")))
        .collect();
    names.sort();
    Ok(names)
}

/// The keys of the shards a resumed job already committed: the duplicate check continues
/// where it stopped.
fn committed_keys(
    out: &Path,
    m: &Manifest,
) -> Result<std::collections::HashSet<String>, PreprocessError> {
    let mut keys = std::collections::HashSet::new();
    let columns = ["key".to_string()];
    for s in &m.shards {
        let path = out.join(&s.file);
        for rows in crate::shard::reader::read_file(&path, Some(&columns))? {
            let rows = rows?;
            for i in 0..rows.len() {
                keys.insert(rows.key(i)?.to_string());
            }
        }
    }
    Ok(keys)
}

/// Deletes what a killed run left past the manifest: temporary files and shards the
/// manifest does not list.
fn discard_uncommitted(
    dir: &Path,
    node: Option<usize>,
    m: &Manifest,
) -> Result<(), PreprocessError> {
    let listed: std::collections::HashSet<&str> =
        m.shards.iter().map(|s| s.file.as_str()).collect();
    for name in shard_files(dir, node)? {
        if !listed.contains(name.as_str()) {
            tracing::info!(file = %name, "removing output of an interrupted run");
            let p = dir.join(&name);
            std::fs::remove_file(&p).map_err(io(&p))?;
        }
    }
    for path in [
        crate::shard::node_manifest_path(dir, node),
        dir.join(&m.rejects_file),
    ] {
        let _ = std::fs::remove_file(maetok_nn::atomic::temp_path(&path));
    }
    for s in &m.shards {
        let p = dir.join(&s.file);
        let len = std::fs::metadata(&p).map_err(io(&p))?.len();
        if len != s.bytes {
            return Err(PreprocessError::Output {
                path: p,
                message: format!("is {len} bytes but the manifest recorded {}; the folder was changed by something else", s.bytes),
            });
        }
    }
    Ok(())
}

fn summary(
    out: &Path,
    manifest_path: &Path,
    m: &Manifest,
    resumed: u64,
    already: bool,
    (started, cpu_start): (Instant, f64),
    threads: usize,
) -> Summary {
    let elapsed = started.elapsed().as_secs_f64();
    Summary {
        output: out.to_path_buf(),
        manifest: manifest_path.to_path_buf(),
        shards: m.shards.len(),
        stats: m.stats.clone(),
        resumed_images: resumed,
        already_complete: already,
        elapsed_s: elapsed,
        images_per_s: (m.stats.images - resumed) as f64 / elapsed.max(1e-9),
        cpu_s: cpu_seconds() - cpu_start,
        peak_rss_bytes: peak_rss_bytes(),
        threads,
    }
}
