//! The collectives a data-parallel loop needs, behind one trait so the loop does not know
//! the backend. Every operation is called by every rank in the same order; the in-place
//! ones write their result into the tensor they are given (gradients, parameters).

use tch::Tensor;

use crate::DistError;

pub trait Collective {
    fn rank(&self) -> usize;
    fn world(&self) -> usize;
    /// The backend's name, for the log.
    fn backend(&self) -> &'static str;
    /// Sums `t` over the ranks, in place; every rank ends with the same values.
    fn all_reduce_sum(&mut self, t: &Tensor) -> Result<(), DistError>;
    /// Copies rank 0's `t` into every rank's `t`.
    fn broadcast(&mut self, t: &Tensor) -> Result<(), DistError>;
    /// Every rank's `t` (same shape everywhere), concatenated along dim 0 in rank order.
    fn all_gather(&mut self, t: &Tensor) -> Result<Tensor, DistError>;
    /// Returns once every rank has called it.
    fn barrier(&mut self) -> Result<(), DistError>;
    /// Tells the other ranks this one stops, and why (best effort: never fails).
    fn abort(&mut self, reason: &str);
    /// Whether every collective is the identity (no backend at all), so callers may skip
    /// the work around them (flattening buckets); a backend run at world size 1 is not.
    fn is_solo(&self) -> bool {
        false
    }
}

/// A job of one process: every collective is the identity.
pub struct Solo;

impl Collective for Solo {
    fn rank(&self) -> usize {
        0
    }
    fn world(&self) -> usize {
        1
    }
    fn backend(&self) -> &'static str {
        "none (1 process)"
    }
    fn all_reduce_sum(&mut self, _: &Tensor) -> Result<(), DistError> {
        Ok(())
    }
    fn broadcast(&mut self, _: &Tensor) -> Result<(), DistError> {
        Ok(())
    }
    fn all_gather(&mut self, t: &Tensor) -> Result<Tensor, DistError> {
        Ok(t.shallow_clone())
    }
    fn barrier(&mut self) -> Result<(), DistError> {
        Ok(())
    }
    fn abort(&mut self, _: &str) {}
    fn is_solo(&self) -> bool {
        true
    }
}

/// The collectives of the job `launch` describes, by backend name: `"nccl"` (needs a CUDA
/// device `cuda`), `"cpu"`, or `"auto"` (NCCL on a CUDA device when libnccl.so loads, the
/// CPU backend otherwise, with a warning on a GPU). Every rank joins under `identity`.
pub fn connect(
    backend: &str,
    launch: &crate::Launch,
    identity: &str,
    timeout: std::time::Duration,
    cuda: Option<usize>,
) -> Result<Box<dyn Collective>, DistError> {
    let nccl = match (backend, cuda) {
        ("nccl", Some(_)) => true,
        ("nccl", None) => {
            return Err(DistError::Unsupported(
                "the NCCL backend needs a CUDA device".into(),
            ))
        }
        ("auto", Some(_)) => crate::nccl::available(),
        ("auto" | "cpu", _) => false,
        (b, _) => {
            return Err(DistError::Unsupported(format!(
                "backend {b:?}: expected \"auto\", \"nccl\" or \"cpu\""
            )))
        }
    };
    if nccl {
        let d = cuda.expect("checked above");
        return Ok(Box::new(crate::nccl::NcclComm::join(
            launch, identity, timeout, d,
        )?));
    }
    if cuda.is_some() {
        tracing::warn!(
            "NCCL is not on the library path: the collectives run over TCP through the host \
             (slow; docs/distributed.md says how to make libnccl.so visible)"
        );
    }
    let (star, _) = crate::rendezvous::join(launch, identity, timeout, b"")?;
    Ok(Box::new(crate::cpu::CpuComm::new(star)))
}
