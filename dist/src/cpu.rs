//! The CPU backend: collectives over the rendezvous's TCP star (for tests and debugging on
//! machines without GPUs, and across hosts when nothing else is at hand; it is not fast).
//! Rank 0 gathers every rank's bytes, sums them in rank order (so every rank ends with the
//! same bits, whatever the timing) and sends the result back. A rank that dies closes its
//! connection, which rank 0 notices at the next collective; rank 0 then tells the others
//! which rank it was (`abort`). A rank that stalls is named after `timeout`; the other ranks
//! wait twice as long for rank 0, so that rank 0's verdict reaches them first.

use tch::{Device, Kind, Tensor};

use crate::rendezvous::Star;
use crate::wire::{Link, Tag};
use crate::{Collective, DistError};

pub struct CpuComm {
    star: Star,
    /// Collectives run so far (named in errors: which call failed).
    calls: u64,
}

fn bytes_of(t: &Tensor) -> (Vec<u8>, Kind, Vec<i64>) {
    let c = t.detach().to_device(Device::Cpu).contiguous();
    let n = c.numel();
    let mut out = vec![0u8; n * c.kind().elt_size_in_bytes()];
    c.copy_data_u8(&mut out, n);
    (out, c.kind(), c.size())
}

fn tensor_of(bytes: &[u8], shape: &[i64], kind: Kind) -> Tensor {
    Tensor::from_data_size(bytes, shape, kind)
}

impl CpuComm {
    pub fn new(star: Star) -> Self {
        Self { star, calls: 0 }
    }

    fn during(&self, what: &str) -> String {
        format!("in {what} (collective #{})", self.calls)
    }

    fn root_link(&mut self) -> &mut Link {
        self.star.links[0]
            .as_mut()
            .expect("a rank's link to rank 0")
    }

    /// Another rank's frame, checked to have `len` bytes.
    fn recv_sized(link: &mut Link, len: usize, during: &str) -> Result<Vec<u8>, DistError> {
        let b = link.recv(Tag::Data, during)?;
        if b.len() != len {
            return Err(DistError::Protocol {
                rank: link.peer,
                what: format!(
                    "{} bytes where {len} were expected {during} (do the ranks run the same model?)",
                    b.len()
                ),
            });
        }
        Ok(b)
    }

    /// Non-zero ranks wait for rank 0 twice as long as rank 0 waits for them.
    fn recv_from_root(&mut self, len: usize, during: &str) -> Result<Vec<u8>, DistError> {
        let wait = self.star.timeout * 2;
        let link = self.root_link();
        let b = link.recv_within(Tag::Data, wait, during)?;
        if b.len() != len {
            return Err(DistError::Protocol {
                rank: 0,
                what: format!("{} bytes where {len} were expected {during}", b.len()),
            });
        }
        Ok(b)
    }

    fn write_back(t: &Tensor, bytes: &[u8], shape: &[i64], kind: Kind) {
        let r = tensor_of(bytes, shape, kind).to_device(t.device());
        tch::no_grad(|| t.shallow_clone().copy_(&r));
    }
}

impl Collective for CpuComm {
    fn rank(&self) -> usize {
        self.star.rank
    }
    fn world(&self) -> usize {
        self.star.world
    }
    fn backend(&self) -> &'static str {
        "cpu (TCP)"
    }

    fn all_reduce_sum(&mut self, t: &Tensor) -> Result<(), DistError> {
        self.calls += 1;
        let during = self.during("all-reduce");
        let (bytes, kind, shape) = bytes_of(t);
        if self.star.rank != 0 {
            self.root_link().send(Tag::Data, &bytes, &during)?;
            let sum = self.recv_from_root(bytes.len(), &during)?;
            Self::write_back(t, &sum, &shape, kind);
            return Ok(());
        }
        let mut acc = tensor_of(&bytes, &shape, kind);
        for link in self.star.links.iter_mut().flatten() {
            let b = Self::recv_sized(link, bytes.len(), &during)?;
            acc += tensor_of(&b, &shape, kind);
        }
        let (sum, _, _) = bytes_of(&acc);
        for link in self.star.links.iter_mut().flatten() {
            link.send(Tag::Data, &sum, &during)?;
        }
        Self::write_back(t, &sum, &shape, kind);
        Ok(())
    }

    fn broadcast(&mut self, t: &Tensor) -> Result<(), DistError> {
        self.calls += 1;
        let during = self.during("broadcast");
        let (bytes, kind, shape) = bytes_of(t);
        if self.star.rank == 0 {
            for link in self.star.links.iter_mut().flatten() {
                link.send(Tag::Data, &bytes, &during)?;
            }
        } else {
            let b = self.recv_from_root(bytes.len(), &during)?;
            Self::write_back(t, &b, &shape, kind);
        }
        Ok(())
    }

    fn all_gather(&mut self, t: &Tensor) -> Result<Tensor, DistError> {
        self.calls += 1;
        let during = self.during("all-gather");
        let (bytes, kind, shape) = bytes_of(t);
        let mut out_shape = shape.clone();
        if out_shape.is_empty() {
            out_shape.push(1);
        }
        out_shape[0] *= self.star.world as i64;
        let all = if self.star.rank != 0 {
            self.root_link().send(Tag::Data, &bytes, &during)?;
            self.recv_from_root(bytes.len() * self.star.world, &during)?
        } else {
            let mut all = bytes.clone();
            for link in self.star.links.iter_mut().flatten() {
                all.extend(Self::recv_sized(link, bytes.len(), &during)?);
            }
            for link in self.star.links.iter_mut().flatten() {
                link.send(Tag::Data, &all, &during)?;
            }
            all
        };
        Ok(tensor_of(&all, &out_shape, kind).to_device(t.device()))
    }

    fn barrier(&mut self) -> Result<(), DistError> {
        self.calls += 1;
        let during = self.during("barrier");
        if self.star.rank != 0 {
            self.root_link().send(Tag::Data, &[], &during)?;
            self.recv_from_root(0, &during)?;
            return Ok(());
        }
        for link in self.star.links.iter_mut().flatten() {
            Self::recv_sized(link, 0, &during)?;
        }
        for link in self.star.links.iter_mut().flatten() {
            link.send(Tag::Data, &[], &during)?;
        }
        Ok(())
    }

    fn abort(&mut self, reason: &str) {
        self.star.abort(reason);
    }
}
