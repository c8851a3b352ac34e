//! The processes of one training job, from the loop's side: this one's rank, the
//! collectives that connect it to the others, and the device it trains on. Built once,
//! before the run folder is touched, so a rank that cannot join (or joins with another
//! config) stops the job before anything is written.

use std::time::Duration;

use anyhow::{bail, Context};
use maetok_dist::{Collective, Launch, Solo};
use tch::Device;

use super::config::DistConfig;
use super::ranks::Ranks;
use crate::run::RunDir;

pub struct Job {
    pub launch: Launch,
    pub ranks: Ranks,
    pub comm: Box<dyn Collective>,
}

impl Job {
    /// One process, no collectives.
    pub fn single() -> Self {
        Self {
            launch: Launch::single(),
            ranks: Ranks::SINGLE,
            comm: Box::new(Solo),
        }
    }

    pub fn is_root(&self) -> bool {
        self.ranks.rank == 0
    }

    /// Joins the job `launch` describes under `identity` (what every rank must agree on:
    /// the config and the dataset), training on `device` with the global batch
    /// `batch_size` (`data.batch_size` of either loop).
    pub fn join(
        launch: &Launch,
        dist: &DistConfig,
        batch_size: usize,
        identity: &str,
        device: Device,
    ) -> anyhow::Result<Self> {
        // One process skips the collective layer, unless a backend is named: then it runs
        // through it (at world size 1, the NCCL path's check on a single GPU).
        if !launch.is_distributed() && dist.backend == "auto" {
            return Ok(Self {
                launch: launch.clone(),
                ..Self::single()
            });
        }
        let world = launch.world;
        if !batch_size.is_multiple_of(world) {
            bail!(
                "data.batch_size = {batch_size} is the global batch and must split evenly over \
                 the {world} processes (each takes batch_size / {world}); make it a multiple of \
                 {world}"
            );
        }
        let timeout = maetok_dist::launch::timeout_from_env()?.unwrap_or(dist.timeout_s);
        let timeout = Duration::from_secs_f64(timeout);
        tracing::info!("{}", launch.describe());
        let joining = || format!("joining the job as {}", launch.describe());
        let cuda = match device {
            Device::Cuda(d) => Some(d),
            _ => None,
        };
        let comm = maetok_dist::connect(&dist.backend, launch, identity, timeout, cuda)
            .with_context(joining)?;
        tracing::info!(
            "rank {} of {world}: collectives over {}",
            launch.rank,
            comm.backend()
        );
        Ok(Self {
            launch: launch.clone(),
            ranks: Ranks {
                rank: launch.rank,
                world,
            },
            comm,
        })
    }
}

impl Job {
    /// The run folder as every rank sees it: rank 0 opens it (its lock, `config.toml`,
    /// leftovers cleared), the others read it once it has.
    pub fn open_run(
        &mut self,
        dir: &std::path::Path,
        config_toml: &str,
        identity: impl Fn(&str) -> anyhow::Result<String>,
    ) -> anyhow::Result<RunDir> {
        if self.is_root() {
            let run = RunDir::open(dir, config_toml, identity)?;
            self.comm.barrier()?;
            Ok(run)
        } else {
            self.comm.barrier()?;
            RunDir::follow(dir, config_toml, identity)
        }
    }

    /// Step folder `step`: rank 0 writes it with `write` (which returns it), the other ranks
    /// wait until it is complete; every rank gets the folder back (the last good state).
    pub fn publish_step(
        &mut self,
        run: &RunDir,
        step: u64,
        write: impl FnOnce() -> anyhow::Result<std::path::PathBuf>,
    ) -> anyhow::Result<std::path::PathBuf> {
        let dir = if self.is_root() { Some(write()?) } else { None };
        self.comm.barrier()?;
        Ok(dir.unwrap_or_else(|| run.step_dir(step)))
    }
}

/// The device of this rank: `train.device` (`name`), with a bare `cuda` meaning this
/// process's GPU (`cuda:LOCAL_RANK`, or the one GPU it sees when the launcher restricted
/// `CUDA_VISIBLE_DEVICES` to it).
pub fn rank_device(name: &str, launch: &Launch) -> anyhow::Result<Device> {
    let device =
        maetok_nn::device::parse_device(name).map_err(|e| anyhow::anyhow!("train.device: {e}"))?;
    if name.trim() != "cuda" || !launch.is_distributed() {
        return Ok(device);
    }
    let visible = tch::Cuda::device_count() as usize;
    match visible {
        1 => Ok(Device::Cuda(0)),
        n if launch.local_rank < n => Ok(Device::Cuda(launch.local_rank)),
        n => bail!(
            "local rank {} has no GPU of its own: this node shows {n} GPU(s) for {} processes",
            launch.local_rank,
            launch.local_world
        ),
    }
}
