//! Improved precision and recall (Kynkäänniemi et al. 2019) as the ADM evaluator's
//! `ManifoldEstimator` computes them (spec §8.2): each feature set's manifold is the union of
//! balls around its points whose squared radius is the squared distance to the 3rd nearest
//! neighbour other than the point itself (the 4th smallest, the point's own 0 included);
//! precision is the share of samples inside the reference manifold, recall the share of
//! reference points inside the sample manifold, `≤` inclusive. Squared distances are
//! `max(|u|² − 2 u·v + |v|², 0)`, in blocks of 5,000 rows. The evaluator computes them in
//! float16 (float32 when that overflows); here they are float32, so a point within float16's
//! rounding of a radius may fall on the other side.

use tch::{Device, Kind, Tensor};

/// Neighbourhood size (the evaluator's `nhood_sizes = [3]`).
pub const K: i64 = 3;
const BLOCK: i64 = 5000;

fn squared_distances(u: &Tensor, v: &Tensor) -> Tensor {
    let nu = u.square().sum_dim_intlist(1, true, Kind::Float);
    let nv = v
        .square()
        .sum_dim_intlist(1, true, Kind::Float)
        .transpose(0, 1);
    (nu - u.matmul(&v.transpose(0, 1)) * 2.0 + nv).clamp_min(0.0)
}

/// Per point, the squared distance to its k-th nearest other point (N,).
pub fn radii(f: &Tensor, k: i64) -> Tensor {
    let n = f.size()[0];
    let mut out = Vec::new();
    let mut start = 0;
    while start < n {
        let len = BLOCK.min(n - start);
        let d = squared_distances(&f.narrow(0, start, len), f);
        out.push(d.kthvalue(k + 1, 1, false).0);
        start += len;
    }
    Tensor::cat(&out, 0)
}

/// For each point of `a`, whether it lies within some ball of `b` (centres `b`, squared
/// radii `rb`).
fn covered(a: &Tensor, b: &Tensor, rb: &Tensor) -> Tensor {
    let (na, nb) = (a.size()[0], b.size()[0]);
    let mut inside = Vec::new();
    let mut i = 0;
    while i < na {
        let li = BLOCK.min(na - i);
        let ai = a.narrow(0, i, li);
        let mut hit = Tensor::zeros([li], (Kind::Bool, a.device()));
        let mut j = 0;
        while j < nb {
            let lj = BLOCK.min(nb - j);
            let d = squared_distances(&ai, &b.narrow(0, j, lj));
            hit = hit.logical_or(
                &d.le_tensor(&rb.narrow(0, j, lj).unsqueeze(0))
                    .any_dim(1, false),
            );
            j += lj;
        }
        inside.push(hit);
        i += li;
    }
    Tensor::cat(&inside, 0)
}

/// (precision, recall) of `samples` against `reference`, both (N, D) features.
pub fn precision_recall(reference: &Tensor, samples: &Tensor) -> (f64, f64) {
    let device = reference.device();
    let r = reference.to_kind(Kind::Float);
    let s = samples.to_device(device).to_kind(Kind::Float);
    let (rr, rs) = (radii(&r, K), radii(&s, K));
    let frac = |t: Tensor| {
        f64::try_from(
            t.to_kind(Kind::Double)
                .mean(Kind::Double)
                .to_device(Device::Cpu),
        )
        .unwrap_or(f64::NAN)
    };
    let precision = frac(covered(&s, &r, &rr));
    let recall = frac(covered(&r, &s, &rs));
    (precision, recall)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same set is fully covered both ways; a far-away set not at all.
    #[test]
    fn identical_and_disjoint_sets() {
        tch::manual_seed(0);
        let a = Tensor::randn([50, 8], (Kind::Float, Device::Cpu));
        assert_eq!(precision_recall(&a, &a), (1.0, 1.0));
        let far = &a + 100.0;
        assert_eq!(precision_recall(&a, &far), (0.0, 0.0));
    }
}
