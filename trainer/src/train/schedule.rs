//! The learning-rate schedule of spec §5.3: timm's `CosineLRScheduler` stepped per
//! iteration (`step_on_epochs=False`, no warm-up prefix): linear warm-up from
//! `warmup_lr_init` over `warmup` steps, then `min + ½(base − min)(1 + cos(π t / total))`
//! with `t` counted from step 0 (so the curve jumps slightly at the end of warm-up, as in
//! timm). Step `t` (0-based) trains with `lr(t)`.

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Cosine {
    pub base: f64,
    pub min: f64,
    pub warmup: u64,
    pub warmup_lr_init: f64,
    pub total: u64,
}

impl Cosine {
    pub fn lr(&self, t: u64) -> f64 {
        if t < self.warmup {
            return self.warmup_lr_init
                + t as f64 * (self.base - self.warmup_lr_init) / self.warmup as f64;
        }
        let frac = (t as f64 / self.total.max(1) as f64).min(1.0);
        self.min + 0.5 * (self.base - self.min) * (1.0 + (std::f64::consts::PI * frac).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_to_min() {
        let s = Cosine {
            base: 2e-4,
            min: 2e-5,
            warmup: 100,
            warmup_lr_init: 1e-5,
            total: 1000,
        };
        assert_eq!(s.lr(0), 1e-5);
        assert!((s.lr(50) - (1e-5 + 50.0 * 1.9e-4 / 100.0)).abs() < 1e-15);
        // timm: at t = warmup the cosine is already at t / total = 0.1.
        let c = 2e-5 + 0.5 * 1.8e-4 * (1.0 + (std::f64::consts::PI * 0.1).cos());
        assert!((s.lr(100) - c).abs() < 1e-15);
        assert!((s.lr(500) - 1.1e-4).abs() < 1e-12);
        assert!((s.lr(1000) - 2e-5).abs() < 1e-15);
        assert!((s.lr(5000) - 2e-5).abs() < 1e-15);
    }
}
