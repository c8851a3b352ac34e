//! Putting saved tensors back into live ones (optimizer moments, EMA, discriminator state)
//! in place, so every handle to them (the optimizer's, the model's) sees the restored values.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use tch::{Device, Tensor};

use crate::error::StateError;

/// A step folder's saved state file (optimiser moments, EMA, discriminator), on `device`.
/// Refused when a tensor holds NaN or ±Inf, naming it: the guard never publishes such a
/// state, so one there was damaged afterwards, and resuming from it would train on NaN.
pub fn read_state_file(path: &Path, device: Device) -> anyhow::Result<HashMap<String, Tensor>> {
    let list =
        Tensor::read_safetensors(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = HashMap::with_capacity(list.len());
    for (k, t) in list {
        if t.is_floating_point() {
            let bad = maetok_nn::weights::non_finite_count(&t).int64_value(&[]);
            anyhow::ensure!(
                bad == 0,
                "{}: `{k}` holds {bad} non-finite values (NaN or ±Inf) of {}; the file was \
                 damaged after it was written: resume from an earlier step folder",
                path.display(),
                t.numel()
            );
        }
        out.insert(k, t.to_device(device));
    }
    Ok(out)
}

/// Copy `saved[key]` into `dst` (same shape; cast to `dst`'s kind), removing it from `saved`.
/// `what` names the file's contents in errors ("optimizer state", "EMA weights", …).
pub fn restore_into(
    dst: &mut Tensor,
    saved: &mut HashMap<String, Tensor>,
    key: &str,
    what: &'static str,
) -> Result<(), StateError> {
    let t = saved.remove(key).ok_or_else(|| StateError::Missing {
        what,
        key: key.to_string(),
    })?;
    if t.size() != dst.size() {
        return Err(StateError::Shape {
            what,
            key: key.to_string(),
            got: t.size(),
            want: dst.size(),
        });
    }
    tch::no_grad(|| dst.copy_(&t.to_kind(dst.kind())));
    Ok(())
}

/// Puts a resumed step folder's optimiser moments (`optimizer.safetensors`) and EMA weights
/// (`ema/`) back.
pub fn restore_optimizer_and_ema(
    dir: &Path,
    st: &crate::run::TrainState,
    opt: &mut crate::train::adamw::AdamW,
    ema: &mut crate::train::ema::Ema,
    device: Device,
) -> anyhow::Result<()> {
    let p = dir.join("optimizer.safetensors");
    let saved = read_state_file(&p, device)?;
    opt.load_state(st.step, saved)
        .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
    let saved: HashMap<String, Tensor> = crate::train::model::read_tensors(&dir.join("ema"))?
        .into_iter()
        .map(|(k, t)| (k, t.to_device(device)))
        .collect();
    ema.load(saved)
        .map_err(|e| anyhow::anyhow!("{}/ema: {e}", dir.display()))
}
