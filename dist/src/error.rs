//! What can go wrong between the processes of a job; every error that concerns a peer
//! names it as `rank N`.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DistError {
    /// The launch variables are missing, malformed or contradict each other.
    #[error("launch environment: {0}")]
    Launch(String),
    /// A peer closed its connection: the process died or exited.
    #[error(
        "rank {rank} left the job (its connection closed: killed, crashed or exited) {during}"
    )]
    PeerGone { rank: usize, during: String },
    /// A peer sent nothing within the timeout.
    #[error(
        "rank {rank} did not answer within {} s {during} (stalled, or far behind; \
         dist.timeout_s or MAETOK_DIST_TIMEOUT_S sets the limit)",
        .timeout.as_secs_f64()
    )]
    Timeout {
        rank: usize,
        timeout: Duration,
        during: String,
    },
    /// A collective did not finish in time and the backend cannot say which rank is late.
    #[error(
        "a collective did not finish within {} s {during} (a rank is stalled or far behind; \
         dist.timeout_s or MAETOK_DIST_TIMEOUT_S sets the limit)",
        .timeout.as_secs_f64()
    )]
    Stalled { timeout: Duration, during: String },
    /// Another rank failed and told this one why.
    #[error("the job stopped: {0}")]
    Aborted(String),
    /// A rank joined with another configuration, dataset or world size than rank 0's.
    #[error("rank {rank} differs from rank 0: {what}")]
    Mismatch { rank: usize, what: String },
    /// Rank 0 could not be reached, or a socket failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A peer sent bytes that are not this protocol.
    #[error("rank {rank} sent a malformed message: {what}")]
    Protocol { rank: usize, what: String },
    /// A tensor this backend cannot carry.
    #[error("{0}")]
    Unsupported(String),
}

impl DistError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}
