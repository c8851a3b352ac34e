//! Putting saved tensors back into live ones (optimizer moments, EMA, discriminator state)
//! in place, so every handle to them (the optimizer's, the model's) sees the restored values.

use std::collections::HashMap;

use tch::Tensor;

use crate::error::StateError;

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
