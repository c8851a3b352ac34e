//! The Fréchet distance between two Gaussians fitted to Inception features (spec §8.2):
//! `|μ1 − μ2|² + tr Σ1 + tr Σ2 − 2 tr (Σ1 Σ2)^½`, with μ and Σ as pytorch-fid computes them
//! (`np.mean`, `np.cov(rowvar=False)`: the unbiased N − 1 denominator), in f64.
//!
//! pytorch-fid takes `scipy.linalg.sqrtm(Σ1 Σ2)` (a Schur square root of a non-symmetric
//! product) and keeps its trace. Only that trace is needed, and it equals the trace of
//! `(Σ1^½ Σ2 Σ1^½)^½`, a symmetric positive semi-definite matrix: here both roots come from
//! symmetric eigendecompositions (libtorch's LAPACK `eigh` in f64), with the round-off's
//! negative eigenvalues set to 0, so rank-deficient statistics (fewer samples than
//! dimensions) give a finite, real answer without pytorch-fid's `eps` retry.

use tch::{Device, Kind, Tensor};

#[derive(Debug, thiserror::Error)]
pub enum FidError {
    #[error("statistics of different sizes: {0} and {1} dimensions")]
    Mismatch(i64, i64),
    #[error("{0} feature rows: a covariance needs at least 2")]
    TooFew(i64),
}

/// The Gaussian fitted to a feature set: mean (D,) and covariance (D, D), f64 on the CPU.
#[derive(Debug)]
pub struct Statistics {
    pub mu: Tensor,
    pub sigma: Tensor,
}

impl Statistics {
    /// From features (N, D) (any float type): `np.mean(axis=0)`, `np.cov(rowvar=False)`.
    pub fn from_features(f: &Tensor) -> Result<Self, FidError> {
        let n = f.size()[0];
        if n < 2 {
            return Err(FidError::TooFew(n));
        }
        let f = f.to_device(Device::Cpu).to_kind(Kind::Double);
        let mu = f.mean_dim(0, false, Kind::Double);
        let c = &f - mu.unsqueeze(0);
        let sigma = c.transpose(0, 1).matmul(&c) / (n - 1) as f64;
        Ok(Self { mu, sigma })
    }

    /// From given values (a reference file's `mu` and `sigma`).
    pub fn new(mu: Vec<f64>, sigma: Vec<f64>) -> Result<Self, FidError> {
        let d = mu.len() as i64;
        if sigma.len() as i64 != d * d {
            return Err(FidError::Mismatch(d, (sigma.len() as f64).sqrt() as i64));
        }
        Ok(Self {
            mu: Tensor::from_slice(&mu),
            sigma: Tensor::from_slice(&sigma).reshape([d, d]),
        })
    }

    pub fn dim(&self) -> i64 {
        self.mu.size()[0]
    }

    /// The Fréchet distance to `other`.
    pub fn frechet_distance(&self, other: &Self) -> Result<f64, FidError> {
        if self.dim() != other.dim() {
            return Err(FidError::Mismatch(self.dim(), other.dim()));
        }
        let diff = &self.mu - &other.mu;
        let root = psd_sqrt(&self.sigma);
        let m = root.matmul(&other.sigma).matmul(&root);
        let m = (&m + m.transpose(0, 1)) * 0.5; // symmetric up to round-off
        let (eig, _) = m.linalg_eigh("L");
        let tr_covmean =
            f64::try_from(eig.clamp_min(0.0).sqrt().sum(Kind::Double)).unwrap_or(f64::NAN);
        let v = |t: Tensor| f64::try_from(t).unwrap_or(f64::NAN);
        Ok(v(diff.dot(&diff)) + v(self.sigma.trace()) + v(other.sigma.trace()) - 2.0 * tr_covmean)
    }
}

/// The square root of a symmetric positive semi-definite matrix (negative round-off
/// eigenvalues taken as 0).
fn psd_sqrt(a: &Tensor) -> Tensor {
    let (w, v) = a.linalg_eigh("L");
    (&v * w.clamp_min(0.0).sqrt().unsqueeze(0)).matmul(&v.transpose(0, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two Gaussians with commuting covariances: the closed form
    /// |Δμ|² + Σ (a_i + b_i − 2 √(a_i b_i)) for diagonal Σ.
    #[test]
    fn diagonal_closed_form() {
        let a = Statistics::new(
            vec![0.0, 1.0, 2.0],
            vec![4.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 9.0],
        )
        .unwrap();
        let b = Statistics::new(
            vec![1.0, 1.0, 0.0],
            vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 4.0],
        )
        .unwrap();
        let want = 1.0 + 4.0 + (4.0 + 1.0 - 4.0) + 0.0 + (9.0 + 4.0 - 12.0);
        let got = a.frechet_distance(&b).unwrap();
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        assert!(a.frechet_distance(&a).unwrap().abs() < 1e-12);
    }
}
