//! What the GAN terms need from the other ranks of a data-parallel job (spec §5.2). The
//! discriminator's heads normalise with BatchNorm over the batch, so on W ranks they must
//! see the global batch, as PyTorch's SyncBatchNorm makes them: each rank pools every
//! rank's backbone readings (its own kept in the autograd graph) in global-batch order and
//! runs the heads on all of them. Every rank then holds the same logits, losses and head
//! gradients; a generator loss computed so carries, on rank r, only the gradient through
//! rank r's samples, which the loop's gradient average turns into the whole by scaling the
//! term by W. The adaptive weight compares gradients of the global terms: the mean over the
//! ranks of the reconstruction's, the sum of the pooled adversarial one's. On one process
//! every operation here is the identity.

use maetok_dist::{Collective, DistError};
use tch::Tensor;

use super::ranks::Ranks;

pub struct Pool<'a> {
    pub comm: &'a mut dyn Collective,
    pub ranks: Ranks,
}

impl Pool<'_> {
    pub fn world(&self) -> usize {
        self.ranks.world
    }

    /// Every rank's `t` (rows = this rank's samples) as one batch in global-batch order,
    /// this rank's rows the live `t` (gradients flow to them), the others' constants.
    pub fn gather(&mut self, t: &Tensor) -> Result<Tensor, DistError> {
        let (w, r) = (self.ranks.world, self.ranks.rank);
        if w == 1 {
            return Ok(t.shallow_clone());
        }
        let b = t.size()[0];
        let all = self.comm.all_gather(&t.detach().contiguous())?;
        let pieces: Vec<Tensor> = (0..w as i64)
            .map(|q| {
                if q == r as i64 {
                    t.shallow_clone()
                } else {
                    all.narrow(0, q * b, b)
                }
            })
            .collect();
        // Rank-major (rank q, local row i) holds global row i·W + q.
        let order: Vec<i64> = (0..w as i64 * b)
            .map(|g| (g % w as i64) * b + g / w as i64)
            .collect();
        Ok(Tensor::cat(&pieces, 0)
            .index_select(0, &Tensor::from_slice(&order).to_device(t.device())))
    }

    /// The mean of `t` over the ranks (a new tensor; `t` is left alone).
    pub fn mean(&mut self, t: &Tensor) -> Result<Tensor, DistError> {
        let s = self.sum(t)?;
        Ok(if self.ranks.world == 1 {
            s
        } else {
            s / self.ranks.world as f64
        })
    }

    /// The sum of `t` over the ranks (a new tensor; `t` is left alone).
    pub fn sum(&mut self, t: &Tensor) -> Result<Tensor, DistError> {
        if self.ranks.world == 1 {
            return Ok(t.shallow_clone());
        }
        let c = t.detach().copy();
        self.comm.all_reduce_sum(&c)?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_process_pools_nothing() {
        let mut solo = maetok_dist::Solo;
        let mut p = Pool {
            comm: &mut solo,
            ranks: Ranks::SINGLE,
        };
        let t = Tensor::from_slice(&[1.0f32, 2.0]).set_requires_grad(true);
        let g = p.gather(&t).unwrap();
        (&g * 3.0).sum(tch::Kind::Float).backward();
        assert_eq!(Vec::<f32>::try_from(t.grad()).unwrap(), [3.0, 3.0]);
        assert_eq!(
            Vec::<f32>::try_from(p.mean(&t).unwrap().detach()).unwrap(),
            [1.0, 2.0]
        );
    }
}
