//! Crash injection for the resume tests (preprocessing and training): `MAETOK_KILL_AT=<point>:<n>` makes the process
//! SIGKILL itself the n-th time it passes `<point>` (1-based). Points, in the order a
//! shard's life passes them:
//!
//! - `image`: after an image's rows went into the open shard (before the first shard, or
//!   mid-shard, depending on n),
//! - `shard_renamed`: a shard file has its final name but the manifest does not list it yet,
//! - `manifest_written`: between shards, everything committed.
//!
//! Training (`maetok train`) passes `train_backward` (mid-step: gradients computed, weights
//! not yet updated), `train_updated` (a step's update done, nothing written),
//! `train_checkpoint_filling` (a step folder half written under its temporary name) and
//! `train_checkpoint_written` (a step folder published and `latest` pointing at it).
//!
//! Unset (the normal case) it costs one relaxed atomic load per call.
//!
//! `MAETOK_PANIC_ON_KEY=<key>` makes processing of that sample panic, to show that a bug on
//! one input becomes a counted reject rather than a stalled or failed job.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
static COUNT: AtomicU64 = AtomicU64::new(0);

fn target() -> &'static Option<(String, u64)> {
    TARGET.get_or_init(|| {
        let v = std::env::var("MAETOK_KILL_AT").ok()?;
        let (point, n) = v.split_once(':')?;
        Some((point.to_string(), n.parse().ok()?))
    })
}

/// Kills the process with SIGKILL if this is the configured point and occurrence.
pub fn point(name: &str) {
    if let Some((p, n)) = target() {
        if p == name && COUNT.fetch_add(1, Ordering::Relaxed) + 1 == *n {
            // SAFETY: raise() with a valid signal number has no memory-safety preconditions.
            unsafe {
                libc::raise(libc::SIGKILL);
            }
        }
    }
}

static PANIC_KEY: OnceLock<Option<String>> = OnceLock::new();

/// Panics if `key` is the sample named by `MAETOK_PANIC_ON_KEY`.
pub fn maybe_panic(key: &str) {
    let target = PANIC_KEY.get_or_init(|| std::env::var("MAETOK_PANIC_ON_KEY").ok());
    if target.as_deref() == Some(key) {
        panic!("MAETOK_PANIC_ON_KEY: injected panic for {key}");
    }
}
