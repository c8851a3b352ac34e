//! What every training loop does around its step (ARCHITECTURE §5), used by both tokenizer
//! stages and by SiT: the run folder with its checkpoints, retention, state and
//! resume (`folder`), the metrics log, loss curves and progress meter (`meter`), and the
//! guard that stops a run on a non-finite loss, gradient or parameter before it is used or
//! published, and on damaged data, naming the last good state (`guard`).

pub mod folder;
pub mod guard;
pub mod meter;
pub mod summary;

pub use folder::{
    dataset_identity, latent_dataset_identity, read_state, sha256_hex, step_name, Retention,
    RunDir, TrainState,
};
pub use guard::Guard;
pub use meter::Meter;
pub use summary::TrainSummary;
