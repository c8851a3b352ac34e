//! The progress meter: steps per second, images per second, the share of time spent
//! waiting for data, and the ETA over each logging window; one log line per window; the
//! run's `metrics.jsonl` and its `loss.png`.

use std::time::Instant;

use super::RunDir;
use crate::viz::write_loss_curves;

type Curves = Vec<(String, Vec<(u64, f64)>)>;

pub struct Meter {
    /// Title of `loss.png`.
    title: String,
    /// Which metrics keys are drawn as curves.
    plotted: fn(&str) -> bool,
    curves: Curves,
    window: Instant,
    window_wait: f64,
    window_steps: u64,
    started: Instant,
    total_wait: f64,
}

impl Meter {
    /// A meter for a run whose earlier metric lines (a resumed run's) are `history`.
    pub fn new(title: String, plotted: fn(&str) -> bool, history: &[serde_json::Value]) -> Self {
        let mut m = Self {
            title,
            plotted,
            curves: Vec::new(),
            window: Instant::now(),
            window_wait: 0.0,
            window_steps: 0,
            started: Instant::now(),
            total_wait: 0.0,
        };
        for v in history {
            m.push_curves(v);
        }
        m
    }

    /// Time the loop spent waiting for the loader.
    pub fn waited(&mut self, secs: f64) {
        self.window_wait += secs;
        self.total_wait += secs;
    }

    /// One step done.
    pub fn stepped(&mut self) {
        self.window_steps += 1;
    }

    /// Closes a logging window at `step`: adds `it_per_sec`, `images_per_sec`,
    /// `data_wait` and `rss_mb` (the process's resident memory, so a leak shows) to `record`, logs `line` with the rate and the ETA of this call (which
    /// stops at `stop`; named when it is before the schedule's `total`), appends `record`
    /// to metrics.jsonl and redraws loss.png.
    pub fn log(
        &mut self,
        run: &RunDir,
        record: &mut serde_json::Value,
        line: &str,
        (step, stop, total): (u64, u64, u64),
        batch: usize,
    ) -> anyhow::Result<()> {
        let dt = self.window.elapsed().as_secs_f64().max(1e-9);
        let it_s = self.window_steps as f64 / dt;
        record["it_per_sec"] = serde_json::json!(it_s);
        record["images_per_sec"] = serde_json::json!(it_s * batch as f64);
        record["data_wait"] = serde_json::json!(self.window_wait / dt);
        if let Some(mb) = resident_mb() {
            record["rss_mb"] = serde_json::json!(mb);
        }
        let eta = stop.saturating_sub(step) as f64 / it_s.max(1e-9);
        let until = if stop < total {
            format!(" (this call stops at step {stop})")
        } else {
            String::new()
        };
        tracing::info!("{line}  {it_s:.2} it/s  ETA {}{until}", fmt_eta(eta));
        run.append_metrics(record)?;
        self.push_curves(record);
        write_loss_curves(&self.title, &self.curves, &run.root.join("loss.png"))?;
        self.window = Instant::now();
        self.window_wait = 0.0;
        self.window_steps = 0;
        Ok(())
    }

    /// Seconds since the meter started.
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64().max(1e-9)
    }

    /// Share of the time since the start spent waiting for data.
    pub fn data_wait_fraction(&self) -> f64 {
        self.total_wait / self.elapsed()
    }

    fn push_curves(&mut self, v: &serde_json::Value) {
        let (Some(step), Some(obj)) = (v["step"].as_u64(), v.as_object()) else {
            return;
        };
        for (k, val) in obj {
            let Some(x) = val.as_f64().filter(|_| (self.plotted)(k)) else {
                continue;
            };
            match self.curves.iter_mut().find(|(n, _)| n == k) {
                Some((_, s)) => s.push((step, x)),
                None => self.curves.push((k.clone(), vec![(step, x)])),
            }
        }
    }
}

/// `H:MM:SS`.
pub fn fmt_eta(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

/// The process's resident set in MiB (Linux `/proc/self/statm`), if it can be read.
pub fn resident_mb() -> Option<f64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: f64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
    Some(pages * page / (1 << 20) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_reads_as_hours_minutes_seconds() {
        assert_eq!(fmt_eta(3725.9), "1:02:05");
        assert_eq!(fmt_eta(-3.0), "0:00:00");
    }
}
