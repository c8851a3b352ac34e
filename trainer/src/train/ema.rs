//! Exponential moving average of the trained tensors (spec §5.3: decay 0.9999 every step,
//! initialised to the weights, `ema ← decay·ema + (1 − decay)·p`, as the reference's
//! `update_ema`).

use std::collections::HashMap;

use tch::Tensor;

pub struct Ema {
    pub decay: f64,
    shadow: Vec<(String, Tensor)>,
}

impl Ema {
    /// A copy of `params` (what `update_ema(ema, model, decay=0)` starts from).
    pub fn new(params: &[(String, Tensor)], decay: f64) -> Self {
        let shadow = params
            .iter()
            .map(|(k, t)| (k.clone(), t.detach().copy()))
            .collect();
        Self { decay, shadow }
    }

    /// One update towards `params` (same names, same order as at `new`).
    pub fn update(&mut self, params: &[(String, Tensor)]) {
        tch::no_grad(|| {
            for ((k, e), (k2, p)) in self.shadow.iter_mut().zip(params) {
                debug_assert_eq!(k, k2);
                let _ = e.g_mul_scalar_(self.decay);
                let _ = e.g_add_(&(p.detach() * (1.0 - self.decay)));
            }
        })
    }

    pub fn tensors(&self) -> &[(String, Tensor)] {
        &self.shadow
    }

    /// Restore from a saved copy; every name must be present with its shape.
    pub fn load(
        &mut self,
        mut saved: HashMap<String, Tensor>,
    ) -> Result<(), crate::error::StateError> {
        for (k, e) in &mut self.shadow {
            super::restore::restore_into(e, &mut saved, k, "EMA weights")?;
        }
        Ok(())
    }
}
