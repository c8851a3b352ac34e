//! Which process of the job this is, read once from the environment the launcher set:
//!
//! * `torchrun --no-python …`: `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`,
//!   `MASTER_ADDR`, `MASTER_PORT`, `TORCHELASTIC_RESTART_COUNT`. torchrun's agent hosts its
//!   own TCP store on `MASTER_PORT`, so maetok's rendezvous takes `MASTER_PORT + 1`.
//! * `srun maetok …` (no torchrun): `SLURM_PROCID`, `SLURM_STEP_NUM_TASKS` (`SLURM_NTASKS`),
//!   `SLURM_LOCALID`, `SLURM_STEP_TASKS_PER_NODE`; the master is `MASTER_ADDR` or the first
//!   host of `SLURM_STEP_NODELIST` (`SLURM_JOB_NODELIST`), the port `MASTER_PORT` or one
//!   derived from `SLURM_JOB_ID`. Nobody else holds the port: the rendezvous takes it.
//! * by hand: `RANK`, `WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT` exported per process
//!   (`LOCAL_RANK`/`LOCAL_WORLD_SIZE` default to one node); the rendezvous takes the port.
//! * none of these: one process.
//!
//! `RANK`/`WORLD_SIZE` win over Slurm's variables (torchrun started by srun, one task per
//! node, is a common layout and its ranks are torchrun's).

use crate::DistError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launcher {
    Single,
    Torchrun,
    Slurm,
    /// `RANK`/`WORLD_SIZE` exported without an agent.
    Manual,
}

impl Launcher {
    pub fn name(self) -> &'static str {
        match self {
            Launcher::Single => "single process",
            Launcher::Torchrun => "torchrun",
            Launcher::Slurm => "srun",
            Launcher::Manual => "hand-set environment",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub launcher: Launcher,
    pub rank: usize,
    pub world: usize,
    pub local_rank: usize,
    pub local_world: usize,
    pub master_addr: String,
    pub master_port: u16,
    /// Where rank 0 hosts maetok's rendezvous.
    pub rendezvous_port: u16,
    /// torchrun's restart count (0 on the first attempt and outside torchrun).
    pub restart_count: u32,
}

/// The first port a Slurm job without `MASTER_PORT` uses: 20000 + job id mod 20000, so
/// two jobs sharing a node rarely collide.
fn slurm_port(job_id: Option<&str>) -> u16 {
    let id: u64 = job_id.and_then(|s| s.trim().parse().ok()).unwrap_or(0);
    20000 + (id % 20000) as u16
}

/// The first host of a Slurm node list: `gpu-[003-004,9],cpu1` → `gpu-003`.
pub fn first_slurm_host(list: &str) -> Option<String> {
    let list = list.trim();
    let end = list
        .char_indices()
        .scan(0i32, |depth, (i, c)| {
            match c {
                '[' => *depth += 1,
                ']' => *depth -= 1,
                _ => {}
            }
            Some((i, c, *depth))
        })
        .find(|&(_, c, d)| c == ',' && d == 0)
        .map_or(list.len(), |(i, _, _)| i);
    let first = &list[..end];
    let host = match first.find('[') {
        Some(open) => {
            let inner = first[open + 1..].trim_end_matches(']');
            let start = inner.split([',', '-']).next().unwrap_or("");
            format!("{}{}", &first[..open], start)
        }
        None => first.to_string(),
    };
    (!host.is_empty()).then_some(host)
}

impl Launch {
    /// One process.
    pub fn single() -> Self {
        Self {
            launcher: Launcher::Single,
            rank: 0,
            world: 1,
            local_rank: 0,
            local_world: 1,
            master_addr: "127.0.0.1".into(),
            master_port: 0,
            rendezvous_port: 0,
            restart_count: 0,
        }
    }

    /// From this process's environment.
    pub fn from_env() -> Result<Self, DistError> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// From the variables `get` returns (the environment, or a test's table).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self, DistError> {
        let bad = |msg: String| DistError::Launch(msg);
        let num = |name: &str| -> Result<Option<usize>, DistError> {
            match get(name) {
                None => Ok(None),
                Some(v) if v.trim().is_empty() => Ok(None),
                Some(v) => v
                    .trim()
                    .parse::<usize>()
                    .map(Some)
                    .map_err(|_| bad(format!("{name}={v:?} is not a non-negative integer"))),
            }
        };
        let port = |name: &str, v: &str| -> Result<u16, DistError> {
            v.trim()
                .parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| bad(format!("{name}={v:?} is not a TCP port (1-65535)")))
        };
        let torchrun = [
            "TORCHELASTIC_RUN_ID",
            "TORCHELASTIC_RESTART_COUNT",
            "TORCHELASTIC_MAX_RESTARTS",
        ]
        .iter()
        .any(|k| get(k).is_some());
        let (rank, world) = (num("RANK")?, num("WORLD_SIZE")?);
        let mut l = if rank.is_some() || world.is_some() {
            let (Some(rank), Some(world)) = (rank, world) else {
                return Err(bad(format!(
                    "{} is set but {} is not: a launch sets both (torchrun does; by hand, \
                     export RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT for every process)",
                    if rank.is_some() { "RANK" } else { "WORLD_SIZE" },
                    if rank.is_some() { "WORLD_SIZE" } else { "RANK" },
                )));
            };
            let local_world = num("LOCAL_WORLD_SIZE")?.unwrap_or(world);
            let local_rank = match num("LOCAL_RANK")? {
                Some(r) => r,
                // By hand on one node, the local rank is the rank.
                None if local_world == world => rank,
                None => {
                    return Err(bad(
                        "LOCAL_WORLD_SIZE is set but LOCAL_RANK is not: which GPU of the node \
                         is this process's?"
                            .into(),
                    ))
                }
            };
            Self {
                launcher: if torchrun {
                    Launcher::Torchrun
                } else {
                    Launcher::Manual
                },
                rank,
                world,
                local_rank,
                local_world,
                master_addr: get("MASTER_ADDR").unwrap_or_default().trim().to_string(),
                master_port: 0,
                rendezvous_port: 0,
                restart_count: num("TORCHELASTIC_RESTART_COUNT")?.unwrap_or(0) as u32,
            }
        } else if let (Some(rank), Some(world)) = (
            num("SLURM_PROCID")?,
            num("SLURM_STEP_NUM_TASKS")?.or(num("SLURM_NTASKS")?),
        ) {
            let local_world = get("SLURM_STEP_TASKS_PER_NODE")
                .or_else(|| get("SLURM_TASKS_PER_NODE"))
                .and_then(|v| {
                    v.split(|c: char| !c.is_ascii_digit())
                        .next()
                        .and_then(|n| n.parse().ok())
                })
                .unwrap_or(world);
            let master = get("MASTER_ADDR")
                .filter(|s| !s.trim().is_empty())
                .or_else(|| {
                    get("SLURM_STEP_NODELIST")
                        .or_else(|| get("SLURM_JOB_NODELIST"))
                        .and_then(|l| first_slurm_host(&l))
                })
                .unwrap_or_default();
            Self {
                launcher: Launcher::Slurm,
                rank,
                world,
                local_rank: num("SLURM_LOCALID")?.unwrap_or(0),
                local_world,
                master_addr: master,
                master_port: 0,
                rendezvous_port: 0,
                restart_count: num("SLURM_RESTART_COUNT")?.unwrap_or(0) as u32,
            }
        } else {
            return Ok(Self::single());
        };
        if l.world == 0 {
            return Err(bad("WORLD_SIZE=0: a job has at least one process".into()));
        }
        if l.rank >= l.world {
            return Err(bad(format!(
                "rank {} is not below the world size {}",
                l.rank, l.world
            )));
        }
        if l.local_world == 0 || l.local_world > l.world {
            return Err(bad(format!(
                "{} processes per node, but {} in the job",
                l.local_world, l.world
            )));
        }
        if l.local_rank >= l.local_world {
            return Err(bad(format!(
                "local rank {} is not below the {} processes per node",
                l.local_rank, l.local_world
            )));
        }
        if l.world == 1 {
            return Ok(Self {
                launcher: l.launcher,
                restart_count: l.restart_count,
                ..Self::single()
            });
        }
        if l.master_addr.is_empty() {
            return Err(bad(format!(
                "{} processes but no MASTER_ADDR: set it to rank 0's host name or address",
                l.world
            )));
        }
        l.master_port = match (get("MASTER_PORT"), l.launcher) {
            (Some(v), _) => port("MASTER_PORT", &v)?,
            (None, Launcher::Slurm) => slurm_port(get("SLURM_JOB_ID").as_deref()),
            (None, _) => {
                return Err(bad(format!(
                    "{} processes but no MASTER_PORT: set it to a free port on rank 0's host",
                    l.world
                )))
            }
        };
        l.rendezvous_port = if l.launcher == Launcher::Torchrun {
            l.master_port.checked_add(1).ok_or_else(|| {
                bad("MASTER_PORT=65535 leaves no port for maetok's rendezvous (it uses MASTER_PORT + 1 under torchrun)".into())
            })?
        } else {
            l.master_port
        };
        Ok(l)
    }

    pub fn is_distributed(&self) -> bool {
        self.world > 1
    }

    /// One line for the log.
    pub fn describe(&self) -> String {
        if self.world == 1 {
            return format!("1 process ({})", self.launcher.name());
        }
        format!(
            "rank {} of {} ({}, local rank {} of {}), rendezvous at {}:{}",
            self.rank,
            self.world,
            self.launcher.name(),
            self.local_rank,
            self.local_world,
            self.master_addr,
            self.rendezvous_port
        )
    }
}

/// `MAETOK_DIST_TIMEOUT_S` when set (it overrides the config's `dist.timeout_s`).
pub fn timeout_from_env() -> Result<Option<f64>, DistError> {
    match std::env::var("MAETOK_DIST_TIMEOUT_S") {
        Err(_) => Ok(None),
        Ok(v) => v
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(Some)
            .ok_or_else(|| {
                DistError::Launch(format!(
                    "MAETOK_DIST_TIMEOUT_S={v:?} is not a positive number of seconds"
                ))
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(vars: &[(&str, &str)]) -> Result<Launch, DistError> {
        let m: std::collections::HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Launch::from_vars(|k| m.get(k).cloned())
    }

    #[test]
    fn torchrun_hands_the_rendezvous_the_next_port() {
        let l = launch(&[
            ("RANK", "3"),
            ("WORLD_SIZE", "8"),
            ("LOCAL_RANK", "3"),
            ("LOCAL_WORLD_SIZE", "4"),
            ("MASTER_ADDR", "node1"),
            ("MASTER_PORT", "29500"),
            ("TORCHELASTIC_RESTART_COUNT", "2"),
        ])
        .unwrap();
        assert_eq!(l.launcher, Launcher::Torchrun);
        assert_eq!((l.rank, l.world, l.local_rank, l.local_world), (3, 8, 3, 4));
        assert_eq!(
            (l.master_port, l.rendezvous_port, l.restart_count),
            (29500, 29501, 2)
        );
    }

    #[test]
    fn by_hand_the_rendezvous_takes_the_master_port() {
        let l = launch(&[
            ("RANK", "1"),
            ("WORLD_SIZE", "2"),
            ("MASTER_ADDR", "127.0.0.1"),
            ("MASTER_PORT", "4000"),
        ])
        .unwrap();
        assert_eq!(l.launcher, Launcher::Manual);
        assert_eq!(
            (l.local_rank, l.local_world, l.rendezvous_port),
            (1, 2, 4000)
        );
    }

    #[test]
    fn slurm_reads_its_own_variables_and_the_first_host() {
        let l = launch(&[
            ("SLURM_PROCID", "5"),
            ("SLURM_STEP_NUM_TASKS", "16"),
            ("SLURM_LOCALID", "1"),
            ("SLURM_STEP_TASKS_PER_NODE", "8(x2)"),
            ("SLURM_STEP_NODELIST", "gpu-[007-008]"),
            ("SLURM_JOB_ID", "123456"),
        ])
        .unwrap();
        assert_eq!(l.launcher, Launcher::Slurm);
        assert_eq!(
            (l.rank, l.world, l.local_rank, l.local_world),
            (5, 16, 1, 8)
        );
        assert_eq!(l.master_addr, "gpu-007");
        assert_eq!(l.rendezvous_port, 20000 + (123456 % 20000) as u16);
        assert_eq!(first_slurm_host("a[1-3,5],b").unwrap(), "a1");
        assert_eq!(first_slurm_host("solo").unwrap(), "solo");
        assert_eq!(first_slurm_host("x01,x02").unwrap(), "x01");
    }

    #[test]
    fn nothing_set_is_one_process_and_world_one_needs_no_master() {
        assert_eq!(launch(&[]).unwrap(), Launch::single());
        let l = launch(&[("RANK", "0"), ("WORLD_SIZE", "1")]).unwrap();
        assert!(!l.is_distributed());
    }

    #[test]
    fn missing_or_contradicting_variables_are_named() {
        let msg = |v: &[(&str, &str)]| launch(v).unwrap_err().to_string();
        assert!(msg(&[("RANK", "0")]).contains("WORLD_SIZE"));
        assert!(msg(&[("RANK", "2"), ("WORLD_SIZE", "2")]).contains("not below"));
        assert!(msg(&[("RANK", "x"), ("WORLD_SIZE", "2")]).contains("RANK=\"x\""));
        assert!(
            msg(&[("RANK", "0"), ("WORLD_SIZE", "2"), ("MASTER_PORT", "1")])
                .contains("MASTER_ADDR")
        );
        assert!(
            msg(&[("RANK", "0"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "h")])
                .contains("MASTER_PORT")
        );
        let p = [
            ("RANK", "0"),
            ("WORLD_SIZE", "2"),
            ("MASTER_ADDR", "h"),
            ("MASTER_PORT", "99999"),
        ];
        assert!(msg(&p).contains("not a TCP port"));
        let lw = [
            ("RANK", "0"),
            ("WORLD_SIZE", "2"),
            ("LOCAL_WORLD_SIZE", "4"),
            ("LOCAL_RANK", "0"),
        ];
        assert!(msg(&lw).contains("per node"));
        let lr = [
            ("RANK", "0"),
            ("WORLD_SIZE", "4"),
            ("LOCAL_WORLD_SIZE", "2"),
            ("LOCAL_RANK", "2"),
        ];
        assert!(msg(&lr).contains("local rank 2"));
        let t = [
            ("RANK", "0"),
            ("WORLD_SIZE", "2"),
            ("MASTER_ADDR", "h"),
            ("MASTER_PORT", "65535"),
            ("TORCHELASTIC_RUN_ID", "x"),
        ];
        assert!(msg(&t).contains("MASTER_PORT + 1"));
    }
}
