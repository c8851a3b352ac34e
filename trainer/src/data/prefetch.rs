//! Batches made ahead of the training step on a background thread, for both loaders. The
//! thread must never call libtorch (see `loader::RawBatch`): producers hand back plain
//! buffers, and tensors are made on the training thread.

use anyhow::Context;
use crossbeam_channel::{bounded, Receiver};

use super::index::{DataCursor, Order};

pub struct Prefetch<T> {
    rx: Option<Receiver<anyhow::Result<T>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<T: Send + 'static> Prefetch<T> {
    /// Runs `next` on thread `name`, keeping up to `depth` results ready; the first error
    /// is delivered and ends the stream.
    pub fn spawn(
        name: String,
        depth: usize,
        mut next: impl FnMut() -> anyhow::Result<T> + Send + 'static,
    ) -> std::io::Result<Self> {
        let (tx, rx) = bounded(depth.max(1));
        let thread = std::thread::Builder::new().name(name).spawn(move || loop {
            let item = next();
            let failed = item.is_err();
            if tx.send(item).is_err() || failed {
                return;
            }
        })?;
        Ok(Self {
            rx: Some(rx),
            thread: Some(thread),
        })
    }

    /// The next result (errors end the stream).
    pub fn next(&self) -> anyhow::Result<T> {
        self.rx
            .as_ref()
            .context("the loader is shut down")?
            .recv()
            .context("the loader thread stopped")?
    }
}

/// A loader's batches in the global order from `start` on: `make(order, cursor)` builds the
/// batch at `cursor` of the epoch's `order`, `after(batch)` is the cursor it leaves, and the
/// order is drawn again whenever an epoch ends.
pub fn in_order<T: Send + 'static>(
    name: String,
    depth: usize,
    (seed, images): (u64, usize),
    start: DataCursor,
    after: fn(&T) -> DataCursor,
    mut make: impl FnMut(&Order, DataCursor) -> anyhow::Result<T> + Send + 'static,
) -> std::io::Result<Prefetch<T>> {
    let mut cursor = start;
    let mut order = Order::new(seed, cursor.epoch, images);
    Prefetch::spawn(name, depth, move || {
        if order.epoch != cursor.epoch {
            order = Order::new(seed, cursor.epoch, images);
        }
        let batch = make(&order, cursor)?;
        cursor = after(&batch);
        Ok(batch)
    })
}

impl<T> Drop for Prefetch<T> {
    /// Stops the thread and waits for it: closing the channel makes its next send fail, so
    /// it ends after the item it is building. Without the join, a process could exit while
    /// the thread is inside libtorch, during libtorch's static teardown.
    fn drop(&mut self) {
        drop(self.rx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
