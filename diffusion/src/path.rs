//! Interpolant paths x_t = α(t)·x0 + σ(t)·ε (spec §7.2): the one place α, σ and their
//! derivatives are written; the training target and the sampler's score both read them.

use std::f64::consts::FRAC_PI_2;

use tch::Tensor;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathKind {
    /// α = 1 − t, σ = t (SiT's and MAETok's).
    Linear,
    /// α = cos(πt/2), σ = sin(πt/2).
    Cosine,
}

/// α, σ, α′, σ′ at one t.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coefficients {
    pub alpha: f64,
    pub sigma: f64,
    pub d_alpha: f64,
    pub d_sigma: f64,
}

/// The same, per sample: tensors broadcastable over the batch.
pub struct TensorCoefficients {
    pub alpha: Tensor,
    pub sigma: Tensor,
    pub d_alpha: Tensor,
    pub d_sigma: Tensor,
}

impl PathKind {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "linear" => Some(Self::Linear),
            "cosine" => Some(Self::Cosine),
            _ => None,
        }
    }

    pub fn at(self, t: f64) -> Coefficients {
        match self {
            Self::Linear => Coefficients {
                alpha: 1.0 - t,
                sigma: t,
                d_alpha: -1.0,
                d_sigma: 1.0,
            },
            Self::Cosine => Coefficients {
                alpha: (t * FRAC_PI_2).cos(),
                sigma: (t * FRAC_PI_2).sin(),
                d_alpha: -FRAC_PI_2 * (t * FRAC_PI_2).sin(),
                d_sigma: FRAC_PI_2 * (t * FRAC_PI_2).cos(),
            },
        }
    }

    /// The coefficients at per-sample times `t` (any shape, e.g. (B, 1, 1)).
    pub fn at_tensor(self, t: &Tensor) -> TensorCoefficients {
        match self {
            Self::Linear => TensorCoefficients {
                alpha: 1.0 - t,
                sigma: t.shallow_clone(),
                d_alpha: t.full_like(-1.0),
                d_sigma: t.ones_like(),
            },
            Self::Cosine => {
                let a = t * FRAC_PI_2;
                TensorCoefficients {
                    alpha: a.cos(),
                    sigma: a.sin(),
                    d_alpha: a.sin() * -FRAC_PI_2,
                    d_sigma: a.cos() * FRAC_PI_2,
                }
            }
        }
    }

    /// The score ∇log p_t(x) from the velocity v at x_t (the official
    /// `get_score_from_velocity`): s = ((α/α′)·v − x) / (σ² − (α/α′)·σ′·σ). Undefined at
    /// t = 0 (σ = 0), which the SDE sampler never evaluates.
    pub fn score_from_velocity(self, v: &Tensor, x: &Tensor, t: f64) -> Tensor {
        let c = self.at(t);
        let ratio = c.alpha / c.d_alpha;
        let var = c.sigma * c.sigma - ratio * c.d_sigma * c.sigma;
        (v * ratio - x) / var
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The derivatives are the derivatives (finite differences), and the linear path's
    /// score is spec §7.4's closed form.
    #[test]
    fn derivatives_and_score() {
        for p in [PathKind::Linear, PathKind::Cosine] {
            for t in [0.1, 0.5, 0.9] {
                let h = 1e-6;
                let (a, b) = (p.at(t + h), p.at(t - h));
                let c = p.at(t);
                assert!(((a.alpha - b.alpha) / (2.0 * h) - c.d_alpha).abs() < 1e-6);
                assert!(((a.sigma - b.sigma) / (2.0 * h) - c.d_sigma).abs() < 1e-6);
            }
        }
        let opts = (tch::Kind::Double, tch::Device::Cpu);
        let (v, x) = (Tensor::randn([3, 4], opts), Tensor::randn([3, 4], opts));
        let t = 0.3;
        let want = (&v * -(1.0 - t) - &x) / t;
        let got = PathKind::Linear.score_from_velocity(&v, &x, t);
        assert!(f64::try_from((got - want).abs().max()).unwrap() < 1e-12);
    }
}
