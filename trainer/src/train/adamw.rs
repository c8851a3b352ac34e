//! AdamW over named tensors, written out so its state is ours to checkpoint: the update
//! is PyTorch's single-tensor `AdamW` (decoupled decay `p ← p(1 − lr·wd)`, bias-corrected
//! moments, `eps` added after the square root), and the decay groups are the reference's
//! `param_groups_weight_decay` (spec §5.3): no decay for 1-D tensors and `*.bias`.

use std::collections::HashMap;

use tch::Tensor;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 1e-4,
        }
    }
}

struct Slot {
    name: String,
    param: Tensor,
    decay: bool,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
}

pub struct AdamW {
    pub config: AdamWConfig,
    /// Optimizer steps taken (PyTorch's per-parameter `step`; every parameter here gets a
    /// gradient every step).
    pub step: u64,
    slots: Vec<Slot>,
}

/// The reference's decay rule (`param.ndim <= 1 or name.endswith(".bias")` → no decay).
pub fn decays(name: &str, t: &Tensor) -> bool {
    t.dim() > 1 && !name.ends_with(".bias")
}

impl AdamW {
    /// Optimise `params` (leaf tensors, shared with the caller; this sets `requires_grad`).
    pub fn new(params: &[(String, Tensor)], config: AdamWConfig) -> Self {
        let slots = params
            .iter()
            .map(|(name, p)| {
                let param = p.set_requires_grad(true);
                Slot {
                    decay: decays(name, &param),
                    exp_avg: param.zeros_like(),
                    exp_avg_sq: param.zeros_like(),
                    name: name.clone(),
                    param,
                }
            })
            .collect();
        Self {
            config,
            step: 0,
            slots,
        }
    }

    pub fn params(&self) -> impl Iterator<Item = &Tensor> {
        self.slots.iter().map(|s| &s.param)
    }

    /// Drop every gradient.
    pub fn zero_grad(&mut self) {
        for s in &mut self.slots {
            s.param.zero_grad();
        }
    }

    /// Scale gradients so their global L2 norm is at most `max_norm`, as
    /// `torch.nn.utils.clip_grad_norm_` (factor `max_norm / (norm + 1e-6)`, capped at 1).
    /// Returns the norm before clipping.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        tch::no_grad(|| {
            let norms: Vec<Tensor> = self
                .slots
                .iter()
                .map(|s| s.param.grad())
                .filter(|g| g.defined())
                .map(|g| g.norm().to_kind(tch::Kind::Float))
                .collect();
            if norms.is_empty() {
                return 0.0;
            }
            let total = Tensor::stack(&norms, 0).norm();
            let coef = (max_norm / (&total + 1e-6)).clamp_max(1.0);
            for s in &self.slots {
                let mut g = s.param.grad();
                if g.defined() {
                    let _ = g.g_mul_(&coef.to_kind(g.kind()));
                }
            }
            f64::try_from(total).unwrap_or(f64::NAN)
        })
    }

    /// One update at learning rate `lr`; parameters without a gradient are left alone.
    pub fn step(&mut self, lr: f64) {
        self.step += 1;
        let c = self.config;
        let bc1 = 1.0 - c.beta1.powi(self.step as i32);
        let bc2_sqrt = (1.0 - c.beta2.powi(self.step as i32)).sqrt();
        tch::no_grad(|| {
            for s in &mut self.slots {
                let g = s.param.grad();
                if !g.defined() {
                    continue;
                }
                if s.decay && c.weight_decay != 0.0 {
                    let _ = s.param.g_mul_scalar_(1.0 - lr * c.weight_decay);
                }
                let _ = s.exp_avg.lerp_(&g, 1.0 - c.beta1);
                let _ = s.exp_avg_sq.g_mul_scalar_(c.beta2);
                let _ = s.exp_avg_sq.addcmul_(&(&g * (1.0 - c.beta2)), &g);
                let denom = s.exp_avg_sq.sqrt() / bc2_sqrt + c.eps;
                let _ = s.param.addcdiv_(&(&s.exp_avg * (-lr / bc1)), &denom);
            }
        });
    }

    /// The moments as `{name}.exp_avg` / `{name}.exp_avg_sq`.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        self.slots
            .iter()
            .flat_map(|s| {
                [
                    (format!("{}.exp_avg", s.name), s.exp_avg.shallow_clone()),
                    (
                        format!("{}.exp_avg_sq", s.name),
                        s.exp_avg_sq.shallow_clone(),
                    ),
                ]
            })
            .collect()
    }

    /// Restore moments saved by `state_tensors` (every parameter must be there, same shape).
    pub fn load_state(
        &mut self,
        step: u64,
        mut saved: HashMap<String, Tensor>,
    ) -> Result<(), crate::error::StateError> {
        for s in &mut self.slots {
            for (suffix, dst) in [
                ("exp_avg", &mut s.exp_avg),
                ("exp_avg_sq", &mut s.exp_avg_sq),
            ] {
                let key = format!("{}.{suffix}", s.name);
                super::restore::restore_into(dst, &mut saved, &key, "optimizer state")?;
            }
        }
        if let Some(k) = saved.keys().next() {
            return Err(crate::error::StateError::Unexpected {
                what: "optimizer state",
                key: k.clone(),
            });
        }
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two steps on f(p) = Σ p² · w against the closed form of PyTorch's AdamW.
    #[test]
    fn matches_the_pytorch_update() {
        let p = Tensor::from_slice(&[1.0f64, -2.0, 0.5, 3.0]).reshape([2, 2]);
        let mut opt = AdamW::new(&[("w".into(), p.shallow_clone())], AdamWConfig::default());
        let mut want: Vec<f64> = vec![1.0, -2.0, 0.5, 3.0];
        let (mut m, mut v) = (vec![0.0; 4], vec![0.0; 4]);
        let (b1, b2, eps, wd, lr) = (0.9f64, 0.95f64, 1e-8, 1e-4, 0.1);
        for t in 1..=2 {
            opt.zero_grad();
            (&p * &p).sum(tch::Kind::Double).backward();
            opt.step(lr);
            for i in 0..4 {
                let g = 2.0 * want[i];
                want[i] *= 1.0 - lr * wd;
                m[i] = b1 * m[i] + (1.0 - b1) * g;
                v[i] = b2 * v[i] + (1.0 - b2) * g * g;
                let mhat = m[i] / (1.0 - b1.powi(t));
                let denom = (v[i] / (1.0 - b2.powi(t))).sqrt() + eps;
                want[i] -= lr * mhat / denom;
            }
        }
        let got: Vec<f64> = Vec::try_from(p.detach().reshape([-1])).unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-12, "{got:?} vs {want:?}");
        }
        assert!(!decays("x.bias", &p) && decays("x.weight", &p));
        assert!(!decays(
            "x.gamma",
            &Tensor::zeros([3], (tch::Kind::Float, tch::Device::Cpu))
        ));
    }

    #[test]
    fn clipping_caps_the_global_norm() {
        let p = Tensor::from_slice(&[3.0f32, 4.0]);
        let mut opt = AdamW::new(&[("p".into(), p.shallow_clone())], AdamWConfig::default());
        (&p * 1.0).sum(tch::Kind::Float).backward(); // grad (1, 1), norm √2
        let n = opt.clip_grad_norm(1.0);
        assert!((n - 2f64.sqrt()).abs() < 1e-6);
        let g: Vec<f32> = Vec::try_from(p.grad()).unwrap();
        assert!((g[0] - (0.5f32).sqrt()).abs() < 1e-5, "{g:?}");
    }
}
