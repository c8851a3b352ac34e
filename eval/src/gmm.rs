//! Diagonal Gaussian mixtures (spec §8.4, the paper's mode analysis): the log-likelihood of
//! given parameters as scikit-learn's `GaussianMixture(covariance_type="diag")` scores it,
//! and EM fitting in its way: k-means initialisation (k-means++ seeding, Lloyd's
//! iterations), `reg_covar` added to every variance, stop when the mean log-likelihood
//! moves by less than `tol`, the best of `n_init` starts. All in f64.

use maetok_nn::rng::SplitMix;
use tch::{Device, Kind, Tensor};

/// A diagonal mixture: weights (K,), means (K, D), variances (K, D).
pub struct DiagGmm {
    pub weights: Tensor,
    pub means: Tensor,
    pub variances: Tensor,
}

pub struct FitOptions {
    pub n_init: usize,
    pub max_iter: usize,
    pub tol: f64,
    pub reg_covar: f64,
    pub seed: u64,
}

impl Default for FitOptions {
    /// scikit-learn's defaults, with 1 start.
    fn default() -> Self {
        Self {
            n_init: 1,
            max_iter: 100,
            tol: 1e-3,
            reg_covar: 1e-6,
            seed: 0,
        }
    }
}

fn f64_of(t: &Tensor) -> Tensor {
    t.to_device(Device::Cpu).to_kind(Kind::Double)
}

impl DiagGmm {
    pub fn components(&self) -> i64 {
        self.weights.size()[0]
    }

    /// Per sample, log p(x) (N,), and the per-component weighted log densities (N, K).
    fn log_parts(&self, x: &Tensor) -> (Tensor, Tensor) {
        let x = f64_of(x);
        let d = x.size()[1] as f64;
        let prec = self.variances.reciprocal(); // (K, D)
                                                // Σ_d (x − μ)² / σ² = x²·p − 2 x·(μ p) + Σ μ² p
        let quad = x.square().matmul(&prec.transpose(0, 1))
            - x.matmul(&(&self.means * &prec).transpose(0, 1)) * 2.0
            + (self.means.square() * &prec)
                .sum_dim_intlist(1, false, Kind::Double)
                .unsqueeze(0);
        let log_det = self.variances.log().sum_dim_intlist(1, false, Kind::Double); // (K,)
        let log_gauss =
            (quad + log_det.unsqueeze(0) + d * (2.0 * std::f64::consts::PI).ln()) * -0.5;
        let weighted = log_gauss + self.weights.log().unsqueeze(0);
        (weighted.logsumexp(&[1i64][..], false), weighted)
    }

    /// log p(x) of each row (scikit-learn's `score_samples`).
    pub fn score_samples(&self, x: &Tensor) -> Tensor {
        self.log_parts(x).0
    }

    /// Mean log-likelihood (scikit-learn's `score`).
    pub fn score(&self, x: &Tensor) -> f64 {
        f64::try_from(self.score_samples(x).mean(Kind::Double)).unwrap_or(f64::NAN)
    }

    /// Free parameters: K·D means, K·D variances, K − 1 weights.
    pub fn parameters(&self) -> i64 {
        let (k, d) = (self.means.size()[0], self.means.size()[1]);
        2 * k * d + k - 1
    }

    /// Bayesian information criterion on `x`: −2 log L + parameters · ln N.
    pub fn bic(&self, x: &Tensor) -> f64 {
        let n = x.size()[0] as f64;
        -2.0 * self.score(x) * n + self.parameters() as f64 * n.ln()
    }

    /// The M-step from responsibilities (N, K).
    fn from_resp(x: &Tensor, resp: &Tensor, reg: f64) -> Self {
        let nk = resp.sum_dim_intlist(0, false, Kind::Double) + 10.0 * f64::EPSILON; // (K,)
        let means = resp.transpose(0, 1).matmul(x) / nk.unsqueeze(1);
        let avg_x2 = resp.transpose(0, 1).matmul(&x.square()) / nk.unsqueeze(1);
        let variances = avg_x2 - means.square() + reg;
        let n = x.size()[0] as f64;
        Self {
            weights: &nk / n,
            means,
            variances: variances.clamp_min(reg),
        }
    }

    /// EM fit of `k` components to rows `x`; the start with the highest final likelihood.
    pub fn fit(x: &Tensor, k: i64, o: &FitOptions) -> Self {
        let x = f64_of(x);
        let mut best: Option<(f64, Self)> = None;
        for init in 0..o.n_init.max(1) {
            let labels = kmeans(&x, k, o.seed.wrapping_add(init as u64));
            let resp = labels.one_hot(k).to_kind(Kind::Double);
            let mut g = Self::from_resp(&x, &resp, o.reg_covar);
            let mut lower = f64::NEG_INFINITY;
            for _ in 0..o.max_iter {
                let (ll, weighted) = g.log_parts(&x);
                let cur = f64::try_from(ll.mean(Kind::Double)).unwrap_or(f64::NAN);
                let resp = (weighted - ll.unsqueeze(1)).exp();
                g = Self::from_resp(&x, &resp, o.reg_covar);
                let done = (cur - lower).abs() < o.tol;
                lower = cur;
                if done {
                    break;
                }
            }
            let s = g.score(&x);
            if best.as_ref().is_none_or(|(b, _)| s > *b) {
                best = Some((s, g));
            }
        }
        best.expect("one start").1
    }
}

/// k-means labels (N,) i64: k-means++ seeding from `seed`, then Lloyd's iterations until
/// no label changes (at most 300, scikit-learn's cap).
pub fn kmeans(x: &Tensor, k: i64, seed: u64) -> Tensor {
    let n = x.size()[0];
    let mut rng = SplitMix::new(seed);
    let sq = |c: &Tensor| -> Tensor {
        (x.square().sum_dim_intlist(1, true, Kind::Double) - x.matmul(&c.transpose(0, 1)) * 2.0
            + c.square()
                .sum_dim_intlist(1, false, Kind::Double)
                .unsqueeze(0))
        .clamp_min(0.0)
    };
    let first = rng.below(n as u64) as i64;
    let mut centres = x.narrow(0, first, 1);
    while centres.size()[0] < k {
        let d: Vec<f64> = Vec::try_from(sq(&centres).min_dim(1, false).0).unwrap_or_default();
        let total: f64 = d.iter().sum();
        let mut u = rng.uniform() * total;
        let mut pick = n - 1;
        for (i, v) in d.iter().enumerate() {
            if u < *v {
                pick = i as i64;
                break;
            }
            u -= v;
        }
        centres = Tensor::cat(&[centres, x.narrow(0, pick, 1)], 0);
    }
    let mut labels = sq(&centres).argmin(1, false);
    for _ in 0..300 {
        let one = labels.one_hot(k).to_kind(Kind::Double);
        let counts = one.sum_dim_intlist(0, false, Kind::Double).clamp_min(1.0);
        let sums = one.transpose(0, 1).matmul(x);
        // An empty cluster keeps its centre.
        let empty = one
            .sum_dim_intlist(0, false, Kind::Double)
            .eq(0.0)
            .unsqueeze(1);
        centres = (sums / counts.unsqueeze(1)).where_self(&empty.logical_not(), &centres);
        let next = sq(&centres).argmin(1, false);
        let same = next.equal(&labels);
        labels = next;
        if same {
            break;
        }
    }
    labels
}
