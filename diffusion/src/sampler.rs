//! Samplers for a velocity model (spec §7.4), as the official `modelling/samplers.py`
//! computes them: the state and the time grid in f64, the model called in its input dtype.
//!
//! * ODE Euler / Heun on `linspace(1, 0, steps + 1)`; Heun averages the slopes at t_cur
//!   and t_next, except on the last step.
//! * SDE Euler–Maruyama on `linspace(1, 0.04, steps)` then 0: diffusion w(t) = 2t, drift
//!   d = v − ½·w·s with s the score from v; `x += d·Δt + √w·√|Δt|·ξ` for the first
//!   `steps − 1` intervals, and a last deterministic step `x += Δt·d` from 0.04 to 0.
//! * Classifier-free guidance with scale s > 1 while `low ≤ t_cur ≤ high` (both ends
//!   inclusive): the conditional and null halves go through the model in one batch and the
//!   guided value is u + s·(c − u), on v (ODE) or on the drift (SDE). Heun's second slope
//!   follows the decision made at t_cur, as the official sampler does. The batch is doubled
//!   once (the official `generate_sit.py` doubles it again, spec §7.4's quirk).

use tch::{Kind, Tensor};

use crate::PathKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SamplerKind {
    Euler,
    Heun,
    EulerMaruyama,
}

impl SamplerKind {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "euler" => Some(Self::Euler),
            "heun" => Some(Self::Heun),
            "euler-maruyama" | "euler_maruyama" | "sde" => Some(Self::EulerMaruyama),
            _ => None,
        }
    }

    /// Network evaluations per sample for `steps` steps (before CFG doubles the batch).
    pub fn evaluations(self, steps: usize) -> usize {
        match self {
            Self::Heun => 2 * steps - 1,
            _ => steps,
        }
    }
}

/// Classifier-free guidance: scale and interval in t (t = 1 noise).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Guidance {
    pub scale: f64,
    pub low: f64,
    pub high: f64,
}

impl Guidance {
    pub const NONE: Self = Self {
        scale: 1.0,
        low: 0.0,
        high: 1.0,
    };

    /// Whether the step starting at `t` is guided.
    pub fn active(&self, t: f64) -> bool {
        self.scale > 1.0 && self.low <= t && t <= self.high
    }
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SamplerSpec {
    pub kind: SamplerKind,
    pub steps: usize,
    pub guidance: Guidance,
    pub path: PathKind,
}

#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("{0}")]
    Invalid(String),
}

impl SamplerSpec {
    pub fn validate(&self) -> Result<(), SampleError> {
        let min = if self.kind == SamplerKind::EulerMaruyama {
            2
        } else {
            1
        };
        if self.steps < min {
            return Err(SampleError::Invalid(format!(
                "{:?} needs at least {min} steps, got {}",
                self.kind, self.steps
            )));
        }
        let g = self.guidance;
        if !(g.scale.is_finite() && g.scale >= 0.0) || g.low > g.high {
            return Err(SampleError::Invalid(format!(
                "guidance scale {} must be finite and ≥ 0, and the interval [{}, {}] ordered",
                g.scale, g.low, g.high
            )));
        }
        Ok(())
    }

    /// The time grid, f64 as `torch.linspace` computes it.
    pub fn grid(&self) -> Vec<f64> {
        let opts = (Kind::Double, tch::Device::Cpu);
        let t = match self.kind {
            SamplerKind::EulerMaruyama => Tensor::cat(
                &[
                    Tensor::linspace(1.0, 0.04, self.steps as i64, opts),
                    Tensor::zeros([1], opts),
                ],
                0,
            ),
            _ => Tensor::linspace(1.0, 0.0, self.steps as i64 + 1, opts),
        };
        Vec::<f64>::try_from(t).expect("a 1-D f64 grid")
    }
}

/// The network: x_t (B, …) and t (B,) in the model's input dtype, labels (B,) i64 → v.
pub type Velocity<'a> = dyn FnMut(&Tensor, &Tensor, &Tensor) -> Tensor + 'a;

/// Run `spec` from `noise` (x at t = 1, (N, …)) with `labels` (N,); `null` is the null
/// label guidance pairs with; `input_kind` the dtype the model is called in;
/// `step_noise(i)` the SDE's ξ of interval i (f64, noise's shape; never called by the
/// ODE samplers). Returns x at t = 0 in f64.
pub fn sample(
    spec: &SamplerSpec,
    model: &mut Velocity,
    noise: &Tensor,
    labels: &Tensor,
    null: i64,
    input_kind: Kind,
    step_noise: &mut dyn FnMut(usize) -> Tensor,
) -> Result<Tensor, SampleError> {
    spec.validate()?;
    let nulls = labels.full_like(null);
    let doubled = Tensor::cat(&[labels, &nulls], 0);
    // One evaluation: the (guided, when `guided`) value of `f(v, model input, t)`.
    let mut eval = |x: &Tensor, t: f64, guided: bool, f: &dyn Fn(&Tensor, &Tensor) -> Tensor| {
        let (input, y) = if guided {
            (Tensor::cat(&[x, x], 0), &doubled)
        } else {
            (x.shallow_clone(), labels)
        };
        let time = Tensor::full([input.size()[0]], t, (Kind::Double, x.device()));
        let v =
            model(&input.to_kind(input_kind), &time.to_kind(input_kind), y).to_kind(Kind::Double);
        let d = f(&v, &input);
        if guided {
            let halves = d.chunk(2, 0);
            let (c, u) = (&halves[0], &halves[1]);
            u + (c - u) * spec.guidance.scale
        } else {
            d
        }
    };
    let grid = spec.grid();
    let g = spec.guidance;
    let mut x = noise.to_kind(Kind::Double);
    tch::no_grad(|| match spec.kind {
        SamplerKind::Euler | SamplerKind::Heun => {
            let velocity = |v: &Tensor, _: &Tensor| v.shallow_clone();
            for i in 0..spec.steps {
                let (t_cur, t_next) = (grid[i], grid[i + 1]);
                let guided = g.active(t_cur);
                let d_cur = eval(&x, t_cur, guided, &velocity);
                let mut x_next = &x + &d_cur * (t_next - t_cur);
                if spec.kind == SamplerKind::Heun && i + 1 < spec.steps {
                    let d_prime = eval(&x_next, t_next, guided, &velocity);
                    x_next = &x + (d_cur * 0.5 + d_prime * 0.5) * (t_next - t_cur);
                }
                x = x_next;
            }
        }
        SamplerKind::EulerMaruyama => {
            let n = grid.len() - 1;
            for i in 0..n {
                let (t_cur, t_next) = (grid[i], grid[i + 1]);
                let dt = t_next - t_cur;
                let w = 2.0 * t_cur;
                let path = spec.path;
                let drift = move |v: &Tensor, input: &Tensor| {
                    v - path.score_from_velocity(v, input, t_cur) * (0.5 * w)
                };
                let d = eval(&x, t_cur, g.active(t_cur), &drift);
                x = if i + 1 < n {
                    let xi = step_noise(i).to_kind(Kind::Double).to_device(x.device());
                    &x + d * dt + xi * (w.sqrt() * dt.abs().sqrt())
                } else {
                    &x + d * dt
                };
            }
        }
    });
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// For v = ε − x0 with a point mass x0 = c, every sampler lands on c: the ODE exactly
    /// (constant velocity field along straight lines), the SDE within its noise.
    #[test]
    fn a_point_mass_is_recovered() {
        let opts = (Kind::Float, tch::Device::Cpu);
        let c = Tensor::from_slice(&[0.5f32, -1.0, 2.0]).reshape([1, 1, 3]);
        let noise = Tensor::randn([4, 1, 3], opts);
        let labels = Tensor::zeros([4], (Kind::Int64, tch::Device::Cpu));
        // x_t = (1 − t)c + tε ⇒ v = ε − c = (x_t − c)/t.
        let cc = c.shallow_clone();
        let mut model =
            |x: &Tensor, t: &Tensor, _: &Tensor| (x - &cc) / t.clamp_min(1e-6).reshape([-1, 1, 1]);
        for kind in [SamplerKind::Euler, SamplerKind::Heun] {
            let spec = SamplerSpec {
                kind,
                steps: 7,
                guidance: Guidance::NONE,
                path: PathKind::Linear,
            };
            let out = sample(
                &spec,
                &mut model,
                &noise,
                &labels,
                1,
                Kind::Float,
                &mut |_| unreachable!(),
            )
            .unwrap();
            let err = f64::try_from((out - c.to_kind(Kind::Double)).abs().max()).unwrap();
            assert!(err < 1e-5, "{kind:?}: {err}");
        }
    }

    #[test]
    fn guidance_interval_is_inclusive_and_off_at_scale_one() {
        let g = Guidance {
            scale: 1.9,
            low: 0.0,
            high: 0.75,
        };
        assert!(g.active(0.75) && g.active(0.0) && !g.active(0.76));
        assert!(!Guidance::NONE.active(0.5));
        let spec = SamplerSpec {
            kind: SamplerKind::EulerMaruyama,
            steps: 4,
            guidance: g,
            path: PathKind::Linear,
        };
        assert_eq!(spec.grid().len(), 5);
        assert_eq!(*spec.grid().last().unwrap(), 0.0);
        assert!((spec.grid()[3] - 0.04).abs() < 1e-15);
    }
}
