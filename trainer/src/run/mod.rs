//! What every training loop does around its step (ARCHITECTURE §5), used by both tokenizer
//! stages and, next, by SiT: the run folder with its checkpoints, retention, state and
//! resume (`folder`), the metrics log, loss curves and progress meter (`meter`), and the
//! guard that stops a run on a non-finite loss or gradient before the update (`guard`).

pub mod folder;
pub mod guard;
pub mod meter;

pub use folder::{read_state, RunDir, TrainState};
pub use guard::Guard;
pub use meter::Meter;
