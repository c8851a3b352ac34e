//! PCA of flattened latents (spec §8.4): the covariance's eigendecomposition in f64, the
//! components by decreasing variance, and the dimension that explains a share of it.

use tch::{Device, Kind, Tensor};

pub struct Pca {
    /// (D,) f64.
    pub mean: Tensor,
    /// (D, R) f64, one component per column, by decreasing variance: R = D, or with fewer
    /// rows than dimensions the nonzero ones (at most N − 1).
    pub components: Tensor,
    /// Variance along each component, decreasing (R,) f64.
    pub variance: Vec<f64>,
}

impl Pca {
    /// From rows (N, D).
    pub fn fit(x: &Tensor) -> Self {
        let x = x.to_device(Device::Cpu).to_kind(Kind::Double);
        let n = x.size()[0];
        let mean = x.mean_dim(0, false, Kind::Double);
        let c = &x - mean.unsqueeze(0);
        let dof = (n - 1).max(1) as f64;
        let (w, components) = if n < x.size()[1] {
            // Fewer rows than values (a few thousand latents of 128 × 32 = 4096): the same
            // nonzero spectrum from the (N, N) Gram matrix, whose eigenvectors u give the
            // components Cᵀu / √(dof·λ); the (D, D) covariance would cost D³.
            let (w, u) = (c.matmul(&c.transpose(0, 1)) / dof).linalg_eigh("L");
            let (w, u) = (w.flip([0]).clamp_min(0.0), u.flip([1]));
            let top = f64::try_from(w.max()).unwrap_or(0.0);
            let rank = i64::try_from(w.gt(top * 1e-12).sum(Kind::Int64)).unwrap_or(0);
            let w = w.narrow(0, 0, rank);
            let v =
                c.transpose(0, 1).matmul(&u.narrow(1, 0, rank)) / (&w * dof).sqrt().unsqueeze(0);
            (w, v)
        } else {
            let cov = c.transpose(0, 1).matmul(&c) / dof;
            let (w, v) = cov.linalg_eigh("L"); // ascending
            (w.flip([0]).clamp_min(0.0), v.flip([1]))
        };
        Self {
            mean,
            components,
            variance: Vec::try_from(w).unwrap_or_default(),
        }
    }

    /// Cumulative share of the variance of the first 1, 2, … components.
    pub fn cumulative_ratio(&self) -> Vec<f64> {
        let total: f64 = self.variance.iter().sum::<f64>().max(f64::MIN_POSITIVE);
        let mut acc = 0.0;
        self.variance
            .iter()
            .map(|v| {
                acc += v;
                acc / total
            })
            .collect()
    }

    /// The fewest components explaining at least `ratio` of the variance.
    pub fn dims_for(&self, ratio: f64) -> usize {
        self.cumulative_ratio()
            .iter()
            .position(|&r| r >= ratio - 1e-12)
            .map_or(self.variance.len(), |i| i + 1)
    }

    /// Rows projected on the first `k` components (N, k) f64.
    pub fn project(&self, x: &Tensor, k: usize) -> Tensor {
        let x = x.to_device(Device::Cpu).to_kind(Kind::Double);
        (x - self.mean.unsqueeze(0)).matmul(&self.components.narrow(1, 0, k as i64))
    }
}

/// Columns scaled to mean 0 and standard deviation 1 with `reference`'s statistics (a zero
/// deviation is taken as 1).
pub fn standardise(x: &Tensor, reference: &Tensor) -> Tensor {
    let (std, mean) = reference.std_mean_dim(0, false, false);
    let std = std.where_self(&std.gt(0.0), &std.ones_like());
    (x - mean.unsqueeze(0)) / std.unsqueeze(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Data stretched along one axis: one component explains most of the variance.
    #[test]
    fn one_dominant_direction() {
        tch::manual_seed(0);
        let x = Tensor::randn([500, 3], (Kind::Double, Device::Cpu))
            * Tensor::from_slice(&[10.0f64, 1.0, 0.5]).unsqueeze(0);
        let p = Pca::fit(&x);
        assert_eq!(p.dims_for(0.9), 1);
        assert_eq!(p.dims_for(1.0), 3);
        assert!(p.variance[0] > 80.0 && p.variance[2] < 0.5);
    }

    /// With fewer rows than dimensions the Gram route gives the covariance route's spectrum
    /// and projections (up to each component's sign).
    #[test]
    fn fewer_rows_than_dimensions() {
        tch::manual_seed(1);
        let x = Tensor::randn([12, 40], (Kind::Double, Device::Cpu))
            * Tensor::linspace(0.1, 3.0, 40, (Kind::Double, Device::Cpu)).unsqueeze(0);
        let gram = Pca::fit(&x);
        assert_eq!(gram.variance.len(), 11); // rank N − 1 after centring
        let c = &x - x.mean_dim(0, false, Kind::Double).unsqueeze(0);
        let (w, v) = (c.transpose(0, 1).matmul(&c) / 11.0).linalg_eigh("L");
        let (w, v) = (w.flip([0]), v.flip([1]));
        for (i, g) in gram.variance.iter().enumerate() {
            let want = f64::try_from(w.get(i as i64)).unwrap();
            assert!((g - want).abs() < 1e-9 * want, "{i}: {g} vs {want}");
        }
        let ours = gram.project(&x, 11).abs();
        let want = c.matmul(&v.narrow(1, 0, 11)).abs();
        let err = f64::try_from((ours - want).abs().max()).unwrap();
        assert!(err < 1e-9, "{err}");
    }
}
