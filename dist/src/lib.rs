//! Data parallelism for maetok's training loops (ARCHITECTURE §6): which process of a job
//! this is (`launch`), how the processes find each other (`rendezvous`), and what they
//! exchange (`Collective`: sums, broadcasts, gathers, barriers), with the loop's uses of
//! it (`grads`: gradients averaged in flat buckets, parameters broadcast, metrics averaged,
//! weights compared).
//!
//! Backends: `Solo` (one process: every collective is the identity), `cpu::CpuComm`
//! (TCP, every rank's tensor summed by rank 0 in rank order, so every rank holds the same
//! bits; for tests and debugging on machines without GPUs) and `nccl::NcclComm` (NCCL
//! through cudarc on the GPUs' memory). Model code never calls a
//! collective: the loop does, after backward.

pub mod collective;
pub mod cpu;
pub mod error;
pub mod grads;
pub mod launch;
pub mod nccl;
pub mod rendezvous;
mod wire;

pub use collective::{connect, Collective, Solo};
pub use error::DistError;
pub use launch::{Launch, Launcher};
