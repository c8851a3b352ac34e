//! The NaN guard: a non-finite loss or gradient norm stops the run before the update, and a
//! non-finite parameter before any step folder holds it, so the last step folder stays the
//! last good state; the error says which terms or tensors went bad and where that state is.
//! Data that turns out damaged mid-run stops it the same way.

use std::path::PathBuf;

use anyhow::bail;
use tch::Tensor;

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

    /// Fails when any of `tensors` holds a non-finite value, naming the first such tensor.
    pub fn params(&self, step: u64, tensors: &[(String, Tensor)]) -> anyhow::Result<()> {
        // One reduction per tensor, one read of the results (one sync on a GPU).
        let counts: Vec<Tensor> = tch::no_grad(|| {
            tensors
                .iter()
                .map(|(_, t)| maetok_nn::weights::non_finite_count(t).reshape([1]))
                .collect()
        });
        if counts.is_empty() {
            return Ok(());
        }
        let counts = Vec::<i64>::try_from(Tensor::cat(&counts, 0).to_device(tch::Device::Cpu))?;
        let bad: Vec<String> = tensors
            .iter()
            .zip(&counts)
            .filter(|(_, &c)| c > 0)
            .map(|((k, t), c)| format!("`{k}` ({c} of {})", t.numel()))
            .collect();
        if bad.is_empty() {
            return Ok(());
        }
        bail!(
            "after step {step} {} tensor(s) hold non-finite values: {}{}; stopping before a \
             step folder holds them. The last good state is {}",
            bad.len(),
            bad.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
            if bad.len() > 3 { ", …" } else { "" },
            self.last_good("the initialisation (no step folder yet)")
        )
    }

    /// The loader's error at `step`, with where the run can be resumed from.
    pub fn data(&self, step: u64, e: anyhow::Error) -> anyhow::Error {
        e.context(format!(
            "reading the batch of step {} failed; stopping. The last good state is {}",
            step + 1,
            self.last_good("the initialisation (no step folder yet)")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_parameters_are_named() {
        let g = Guard::new(Some(PathBuf::from("run/checkpoints/step-0000002")));
        let ok = vec![(
            "a".to_string(),
            Tensor::ones([3], (tch::Kind::Float, tch::Device::Cpu)),
        )];
        assert!(g.params(3, &ok).is_ok());
        let bad = Tensor::from_slice(&[1.0f32, f32::NAN, f32::INFINITY, 2.0]);
        let e = g
            .params(
                3,
                &[
                    ("a".into(), ok[0].1.shallow_clone()),
                    ("decoder.w".into(), bad),
                ],
            )
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`decoder.w` (2 of 4)") && !e.contains("`a`") && e.contains("step-0000002"),
            "{e}"
        );
    }

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
