//! What one call of a training loop did, written beside the run's other records.

use std::path::PathBuf;

use super::{Meter, RunDir};

/// What a finished (or stopped) call did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrainSummary {
    pub start_step: u64,
    pub end_step: u64,
    pub last_checkpoint: Option<PathBuf>,
    pub final_losses: Vec<(String, f64)>,
    pub images_per_sec: f64,
    /// Share of wall time spent waiting for the loader.
    pub data_wait_fraction: f64,
}

impl TrainSummary {
    /// The summary of steps `start_step..end_step`; rank 0 (`write`) records it as the run's
    /// `summary.json` (timings: not part of the training state).
    pub fn finish(
        run: &RunDir,
        write: bool,
        (start_step, end_step): (u64, u64),
        last_checkpoint: Option<PathBuf>,
        final_losses: Vec<(String, f64)>,
        batch_size: usize,
        meter: &Meter,
    ) -> anyhow::Result<Self> {
        let summary = Self {
            start_step,
            end_step,
            last_checkpoint,
            final_losses,
            images_per_sec: (end_step - start_step) as f64 * batch_size as f64 / meter.elapsed(),
            data_wait_fraction: meter.data_wait_fraction(),
        };
        if write {
            maetok_nn::atomic::write(
                &run.root.join("summary.json"),
                &serde_json::to_vec_pretty(&summary)?,
            )?;
        }
        Ok(summary)
    }
}
