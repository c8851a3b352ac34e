//! The NaN guard: a non-finite loss or gradient norm stops the run before the update, so
//! the last step folder stays the last good state, and the error says which terms went bad
//! and where that state is.

use std::path::PathBuf;

use anyhow::bail;

/// Knows the last good state to name in its errors.
#[derive(Debug, Default)]
pub struct Guard {
    /// The newest complete step folder (`None`: only the initialisation).
    pub last_checkpoint: Option<PathBuf>,
}

impl Guard {
    pub fn new(last_checkpoint: Option<PathBuf>) -> Self {
        Self { last_checkpoint }
    }

    fn last_good(&self, none: &str) -> String {
        self.last_checkpoint
            .as_ref()
            .map_or(none.into(), |p| p.display().to_string())
    }

    /// Fails when the loss of `step` is not finite, naming the non-finite `terms`.
    pub fn loss(&self, step: u64, loss: f64, terms: &[(String, f64)]) -> anyhow::Result<()> {
        if loss.is_finite() {
            return Ok(());
        }
        let bad: Vec<String> = terms
            .iter()
            .filter(|(_, v)| !v.is_finite())
            .map(|(k, v)| format!("{k} = {v}"))
            .collect();
        bail!(
            "the loss is {loss} at step {step} ({}); stopping before the update. The last \
             good state is {}",
            bad.join(", "),
            self.last_good("the initialisation (no step folder yet)")
        )
    }

    /// Fails when the gradient norm of `step` is not finite.
    pub fn grad_norm(&self, step: u64, norm: f64, loss: f64) -> anyhow::Result<()> {
        if norm.is_finite() {
            return Ok(());
        }
        bail!(
            "the gradient norm is {norm} at step {step} (loss {loss}); stopping before the \
             update. The last good state is {}",
            self.last_good("the initialisation")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_values_stop_with_the_last_good_state() {
        let g = Guard::new(Some(PathBuf::from("run/checkpoints/step-0000004")));
        assert!(g.loss(5, 0.3, &[]).is_ok() && g.grad_norm(5, 1.0, 0.3).is_ok());
        let e = g
            .loss(
                5,
                f64::NAN,
                &[("rec".into(), 0.1), ("lpips".into(), f64::INFINITY)],
            )
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("lpips = inf") && !e.contains("rec =") && e.contains("step-0000004"),
            "{e}"
        );
        let e = Guard::default()
            .grad_norm(0, f64::NAN, 0.3)
            .unwrap_err()
            .to_string();
        assert!(e.contains("the initialisation"), "{e}");
    }
}
