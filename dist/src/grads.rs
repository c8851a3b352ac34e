//! What a data-parallel loop does with the collectives: average the gradients after
//! backward (in flat buckets, one collective per bucket rather than one per tensor),
//! broadcast rank 0's parameters at start, average logged values, and check that every
//! rank holds the same weights.

use std::hash::Hasher;

use tch::{Kind, Tensor};

use crate::{Collective, DistError};

/// Default bucket size: 25 MiB, PyTorch DDP's `bucket_cap_mb`.
pub const BUCKET_BYTES: usize = 25 << 20;

/// Consecutive runs of `tensors` with one dtype and device and at most `cap` bytes (a
/// tensor larger than `cap` is a bucket of its own).
fn buckets(tensors: &[Tensor], cap: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, t) in tensors.iter().enumerate() {
        let b = t.numel() * t.kind().elt_size_in_bytes();
        let same =
            i > start && tensors[start].kind() == t.kind() && tensors[start].device() == t.device();
        if i > start && (!same || bytes + b > cap) {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += b;
    }
    if start < tensors.len() {
        out.push(start..tensors.len());
    }
    out
}

/// Runs `op` on each bucket of `tensors` flattened into one buffer, then copies the
/// buffer back into the tensors.
fn bucketed(
    comm: &mut dyn Collective,
    tensors: &[Tensor],
    cap: usize,
    mut op: impl FnMut(&mut dyn Collective, &Tensor) -> Result<(), DistError>,
) -> Result<(), DistError> {
    tch::no_grad(|| {
        for range in buckets(tensors, cap) {
            let part = &tensors[range];
            let flat = Tensor::cat(&part.iter().map(|t| t.reshape([-1])).collect::<Vec<_>>(), 0);
            op(comm, &flat)?;
            let mut off = 0;
            for t in part {
                let n = t.numel() as i64;
                t.shallow_clone().copy_(&flat.narrow(0, off, n).view_as(t));
                off += n;
            }
        }
        Ok(())
    })
}

/// Averages the gradients of `params` over the ranks (every rank's gradient is a mean over
/// its share of the global batch, so the average is the global batch's gradient). Every
/// parameter must have a gradient on every rank.
pub fn average_grads(
    comm: &mut dyn Collective,
    params: &[Tensor],
    bucket_bytes: usize,
) -> Result<(), DistError> {
    let world = comm.world();
    if comm.is_solo() {
        return Ok(());
    }
    let grads: Vec<Tensor> = params.iter().map(|p| p.grad()).collect();
    if let Some(i) = grads.iter().position(|g| !g.defined()) {
        return Err(DistError::Unsupported(format!(
            "parameter #{i} has no gradient on rank {}: every trained tensor must get one",
            comm.rank()
        )));
    }
    bucketed(comm, &grads, bucket_bytes, |c, flat| {
        c.all_reduce_sum(flat)?;
        let _ = flat.shallow_clone().g_div_scalar_(world as f64);
        Ok(())
    })
}

/// Makes every rank's `tensors` rank 0's.
pub fn broadcast_tensors(comm: &mut dyn Collective, tensors: &[Tensor]) -> Result<(), DistError> {
    if comm.is_solo() {
        return Ok(());
    }
    bucketed(comm, tensors, BUCKET_BYTES, |c, flat| c.broadcast(flat))
}

/// The mean over the ranks of each value (every rank gets the same numbers).
pub fn mean_values(comm: &mut dyn Collective, values: &[f64]) -> Result<Vec<f64>, DistError> {
    if comm.is_solo() || values.is_empty() {
        return Ok(values.to_vec());
    }
    let t = Tensor::from_slice(values);
    comm.all_reduce_sum(&t)?;
    let sum: Vec<f64> =
        Vec::try_from(&t).map_err(|e: tch::TchError| DistError::Unsupported(e.to_string()))?;
    Ok(sum.iter().map(|s| s / comm.world() as f64).collect())
}

/// A 64-bit hash of the tensors' bytes.
pub fn fingerprint(tensors: &[Tensor]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for t in tensors {
        let c = t.detach().to_device(tch::Device::Cpu).contiguous();
        let n = c.numel();
        let mut bytes = vec![0u8; n * c.kind().elt_size_in_bytes()];
        c.copy_data_u8(&mut bytes, n);
        h.write(&bytes);
    }
    h.finish()
}

/// Fails naming the ranks whose `tensors` are not bit-identical to rank 0's.
pub fn check_identical(
    comm: &mut dyn Collective,
    tensors: &[Tensor],
    what: &str,
) -> Result<(), DistError> {
    if comm.is_solo() {
        return Ok(());
    }
    let mine = Tensor::from_slice(&[fingerprint(tensors) as i64]);
    let all: Vec<i64> = Vec::try_from(&comm.all_gather(&mine)?.to_kind(Kind::Int64))
        .map_err(|e: tch::TchError| DistError::Unsupported(e.to_string()))?;
    let differ: Vec<String> = all
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(_, h)| **h != all[0])
        .map(|(r, _)| r.to_string())
        .collect();
    if differ.is_empty() {
        return Ok(());
    }
    Err(DistError::Mismatch {
        rank: differ[0].parse().unwrap_or(0),
        what: format!(
            "{what} differ from rank 0's on rank(s) {} (the ranks have diverged)",
            differ.join(", ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::CpuComm;
    use crate::{rendezvous, Launch, Launcher};
    use std::time::Duration;

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn launch(rank: usize, world: usize, port: u16) -> Launch {
        Launch {
            launcher: Launcher::Manual,
            rank,
            world,
            local_rank: rank,
            local_world: world,
            master_addr: "127.0.0.1".into(),
            master_port: port,
            rendezvous_port: port,
            restart_count: 0,
        }
    }

    /// Runs `f` as every rank of a `world`-rank CPU job, one thread per rank.
    fn job<T: Send + 'static>(
        world: usize,
        ids: impl Fn(usize) -> String,
        f: impl Fn(&mut dyn Collective) -> Result<T, DistError> + Send + Sync + Copy + 'static,
    ) -> Vec<Result<T, DistError>> {
        let port = free_port();
        let handles: Vec<_> = (0..world)
            .map(|r| {
                let id = ids(r);
                std::thread::spawn(move || {
                    let (star, _) = rendezvous::join(
                        &launch(r, world, port),
                        &id,
                        Duration::from_secs(10),
                        b"",
                    )?;
                    f(&mut CpuComm::new(star))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    }

    #[test]
    fn collectives_agree_on_every_rank() {
        let out = job(
            3,
            |_| "same".into(),
            |c| {
                let r = c.rank() as f32;
                let t = Tensor::from_slice(&[r, 10.0 * r, 1.5]);
                c.all_reduce_sum(&t)?;
                let b = Tensor::from_slice(&[r + 7.0]);
                c.broadcast(&b)?;
                let g = c.all_gather(&Tensor::from_slice(&[r, -r]))?;
                c.barrier()?;
                let m = mean_values(c, &[r as f64, 2.0])?;
                Ok((
                    Vec::<f32>::try_from(&t).unwrap(),
                    Vec::<f32>::try_from(&b).unwrap(),
                    Vec::<f32>::try_from(&g).unwrap(),
                    m,
                ))
            },
        );
        for o in out {
            let (s, b, g, m) = o.unwrap();
            assert_eq!(s, [3.0, 30.0, 4.5]);
            assert_eq!(b, [7.0]);
            assert_eq!(g, [0.0, 0.0, 1.0, -1.0, 2.0, -2.0]);
            assert_eq!(m, [1.0, 2.0]);
        }
    }

    #[test]
    fn gradients_are_averaged_in_buckets() {
        // Three tensors, a bucket cap that splits them, and an f64 one of its own.
        let out = job(
            2,
            |_| "g".into(),
            |c| {
                let r = c.rank() as f64;
                let ps: Vec<Tensor> = [vec![1.0f32; 5], vec![2.0; 3]]
                    .iter()
                    .map(|v| Tensor::from_slice(v).set_requires_grad(true))
                    .chain([Tensor::from_slice(&[1.0f64, 1.0]).set_requires_grad(true)])
                    .collect();
                let loss = ps
                    .iter()
                    .map(|p| (p.to_kind(Kind::Double) * (r + 1.0)).sum(Kind::Double))
                    .fold(Tensor::from(0.0f64), |a, b| a + b);
                loss.backward();
                average_grads(c, &ps, 24)?;
                Ok(ps
                    .iter()
                    .map(|p| Vec::<f64>::try_from(p.grad().to_kind(Kind::Double)).unwrap())
                    .collect::<Vec<_>>())
            },
        );
        for o in out {
            for g in o.unwrap() {
                assert!(g.iter().all(|&x| x == 1.5), "{g:?}");
            }
        }
        let z: Vec<Tensor> = (0..3)
            .map(|_| Tensor::zeros([4], (Kind::Float, tch::Device::Cpu)))
            .collect();
        assert_eq!(buckets(&z, 32).len(), 2);
    }

    #[test]
    fn diverged_weights_and_other_configs_are_named() {
        let out = job(
            3,
            |_| "w".into(),
            |c| {
                let t = Tensor::from_slice(&[if c.rank() == 2 { 1.0f32 } else { 0.0 }]);
                check_identical(c, &[t], "weights")
            },
        );
        let e = out[0].as_ref().unwrap_err().to_string();
        assert!(e.contains("rank(s) 2"), "{e}");
        let out = job(2, |r| format!("cfg{r}"), |_| Ok(()));
        let e = out[0].as_ref().unwrap_err().to_string();
        assert!(e.contains("rank 1") && e.contains("configuration"), "{e}");
        let e = out[1].as_ref().unwrap_err().to_string();
        assert!(e.contains("rank 0:") && e.contains("rank 1 differs"), "{e}");
    }

    #[test]
    fn a_rank_that_leaves_is_named_to_the_others() {
        let out = job(
            3,
            |_| "x".into(),
            |c| {
                if c.rank() == 1 {
                    return Err(DistError::Aborted("leaving".into())); // drops its connection
                }
                let t = Tensor::from_slice(&[1.0f32]);
                let r = c.all_reduce_sum(&t);
                if let Err(e) = &r {
                    c.abort(&e.to_string());
                }
                r
            },
        );
        let root = out[0].as_ref().unwrap_err().to_string();
        assert!(root.contains("rank 1 left the job"), "{root}");
        let other = out[2].as_ref().unwrap_err().to_string();
        assert!(other.contains("rank 1 left the job"), "{other}");
    }

    #[test]
    fn a_stalled_rank_is_named_after_the_timeout() {
        let port = free_port();
        let t = Duration::from_millis(400);
        let h = std::thread::spawn(move || {
            let (star, _) = rendezvous::join(&launch(1, 2, port), "s", t, b"").unwrap();
            std::thread::sleep(Duration::from_secs(2));
            drop(star);
        });
        let (star, _) = rendezvous::join(&launch(0, 2, port), "s", t, b"").unwrap();
        let e = CpuComm::new(star)
            .all_reduce_sum(&Tensor::from_slice(&[1.0f32]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("rank 1 did not answer within 0.4 s"), "{e}");
        h.join().unwrap();
    }
}
