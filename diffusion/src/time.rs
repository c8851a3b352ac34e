//! How t is drawn for training (spec §7.2). The caller makes the draw (keyed by seed, step
//! and global sample index, so it does not depend on the number of processes) and this
//! module turns it into t.

use std::f64::consts::PI;

use tch::Tensor;

use crate::PathKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeSampling {
    /// t ~ U(0, 1): the draw is uniform.
    Uniform,
    /// The official `lognormal` weighting: n ~ N(0, 1), σ = eⁿ, t = σ / (1 + σ) on the
    /// linear path (= sigmoid(n), logit-normal(0, 1)), t = (2/π)·atan(σ) on the cosine one.
    /// The draw is standard normal.
    #[serde(alias = "lognormal")]
    LogitNormal,
}

impl TimeSampling {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "uniform" => Some(Self::Uniform),
            "lognormal" | "logit_normal" | "logit-normal" => Some(Self::LogitNormal),
            _ => None,
        }
    }

    /// True when [`TimeSampling::time`] expects a standard-normal draw, false for uniform.
    pub fn wants_normal(self) -> bool {
        self == Self::LogitNormal
    }

    /// t from the draw, elementwise, in the draw's dtype.
    pub fn time(self, draw: &Tensor, path: PathKind) -> Tensor {
        match self {
            Self::Uniform => draw.shallow_clone(),
            Self::LogitNormal => {
                let sigma = draw.exp();
                match path {
                    PathKind::Linear => &sigma / (&sigma + 1.0),
                    PathKind::Cosine => sigma.atan() * (2.0 / PI),
                }
            }
        }
    }
}
