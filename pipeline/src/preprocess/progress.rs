//! Progress of a long job: a bar with images/s and ETA on a terminal (with the `cli`
//! feature, which brings indicatif), and a `tracing` line every few seconds otherwise (logs
//! of batch jobs, and library users without the feature).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

#[cfg(feature = "cli")]
use indicatif::ProgressBar;

/// Without the `cli` feature there is no bar: a type with no values keeps the code one.
#[cfg(not(feature = "cli"))]
enum ProgressBar {}

#[cfg(not(feature = "cli"))]
impl ProgressBar {
    fn set_position(&self, _: u64) {
        match *self {}
    }
    fn set_message(&self, _: String) {
        match *self {}
    }
    fn finish_and_clear(&self) {
        match *self {}
    }
}

/// A terminal bar over `total_bytes`, at `done_bytes` already.
#[cfg(feature = "cli")]
fn terminal_bar(total_bytes: u64, done_bytes: u64) -> ProgressBar {
    use indicatif::{ProgressDrawTarget, ProgressStyle};
    let bar =
        ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::stderr_with_hz(4));
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {percent:>3}% {msg} ETA {eta}",
        )
        .expect("static template"),
    );
    bar.set_position(done_bytes);
    bar
}

/// Tracks input bytes (for the ETA) and images (for the rate).
pub struct Progress {
    bar: Option<ProgressBar>,
    total_bytes: u64,
    done_bytes: u64,
    images: u64,
    start: Instant,
    last_log: Instant,
    start_images: u64,
}

impl Progress {
    /// `done_bytes`/`images` are what an earlier, resumed run already did.
    pub fn new(total_bytes: u64, done_bytes: u64, images: u64, show_bar: bool) -> Progress {
        let terminal = show_bar && std::io::stderr().is_terminal();
        #[cfg(feature = "cli")]
        let bar = terminal.then(|| terminal_bar(total_bytes, done_bytes));
        #[cfg(not(feature = "cli"))]
        let bar: Option<ProgressBar> = {
            let _ = terminal;
            None
        };
        let now = Instant::now();
        Progress {
            bar,
            total_bytes,
            done_bytes,
            images,
            start: now,
            last_log: now,
            start_images: images,
        }
    }

    fn rate(&self) -> f64 {
        (self.images - self.start_images) as f64 / self.start.elapsed().as_secs_f64().max(1e-9)
    }

    /// Records one step.
    pub fn advance(&mut self, bytes: u64, images: u64) {
        self.done_bytes += bytes;
        self.images += images;
        if let Some(bar) = &self.bar {
            bar.set_position(self.done_bytes);
            bar.set_message(format!("{} images, {:.1} img/s", self.images, self.rate()));
        } else if self.last_log.elapsed() >= Duration::from_secs(10) {
            self.last_log = Instant::now();
            let frac = self.done_bytes as f64 / self.total_bytes.max(1) as f64;
            let elapsed = self.start.elapsed().as_secs_f64();
            let eta = if frac > 0.0 {
                elapsed / frac * (1.0 - frac)
            } else {
                f64::NAN
            };
            tracing::info!(
                images = self.images,
                rate = format!("{:.1} img/s", self.rate()),
                done = format!("{:.1}%", 100.0 * frac),
                eta_s = eta.round(),
                "preprocess progress"
            );
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Peak resident memory of this process in bytes (Linux `VmHWM`), if known.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU seconds (user + system, all threads) this process has used so far.
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we pass; RUSAGE_SELF is always valid.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return f64::NAN;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(u.ru_utime) + tv(u.ru_stime)
}
