//! Building blocks from timm-named weights (`{prefix}.attn.qkv.weight`, `{prefix}.mlp.fc1.*`,
//! …), shape-checked, so every model in the workspace (teachers, the MAETok tokenizer, its
//! decoders) reads its blocks the same way.

use super::{Activation, Attention, AttentionImpl, Block, LayerNorm, Linear, Mlp};
use crate::weights::{WeightError, Weights};

/// `Linear` `{prefix}.weight` (out, in) and `{prefix}.bias` (out).
pub fn linear(w: &mut Weights, prefix: &str, out: i64, inp: i64) -> Result<Linear, WeightError> {
    Ok(Linear::new(
        w.take(&format!("{prefix}.weight"), &[out, inp])?,
        Some(w.take(&format!("{prefix}.bias"), &[out])?),
    ))
}

/// Affine LayerNorm `{prefix}.weight/.bias` of width `c`.
pub fn layer_norm(
    w: &mut Weights,
    prefix: &str,
    c: i64,
    eps: f64,
) -> Result<LayerNorm, WeightError> {
    Ok(LayerNorm::new(
        w.take(&format!("{prefix}.weight"), &[c])?,
        w.take(&format!("{prefix}.bias"), &[c])?,
        eps,
    ))
}

/// `{prefix}.attn.qkv` and `{prefix}.attn.proj`.
pub fn attention(
    w: &mut Weights,
    prefix: &str,
    c: i64,
    heads: i64,
) -> Result<Attention, WeightError> {
    Ok(Attention {
        qkv: linear(w, &format!("{prefix}.attn.qkv"), 3 * c, c)?,
        proj: linear(w, &format!("{prefix}.attn.proj"), c, c)?,
        num_heads: heads,
        imp: AttentionImpl::Sdpa,
    })
}

/// `{prefix}.mlp.fc1/fc2`; the hidden width is read from fc1, and a packed SwiGLU (fc2 reading
/// half of fc1's output) is detected from the shapes.
pub fn mlp(w: &mut Weights, prefix: &str, c: i64, act: Activation) -> Result<Mlp, WeightError> {
    let fc1_key = format!("{prefix}.mlp.fc1.weight");
    let hidden = match w.shape(&fc1_key) {
        Some(s) if s.len() == 2 => s[0],
        _ => return Err(w.missing(&fc1_key, Some(&[-1, c]))),
    };
    let fc2_in = w
        .shape(&format!("{prefix}.mlp.fc2.weight"))
        .map_or(hidden, |s| s[s.len() - 1]);
    let act = if fc2_in * 2 == hidden {
        Activation::SwiGlu
    } else {
        act
    };
    let fc2_in = if act == Activation::SwiGlu {
        hidden / 2
    } else {
        hidden
    };
    Ok(Mlp {
        fc1: linear(w, &format!("{prefix}.mlp.fc1"), hidden, c)?,
        fc2: linear(w, &format!("{prefix}.mlp.fc2"), c, fc2_in)?,
        act,
    })
}

/// A timm pre-norm block (`norm1`, `attn`, optional `ls1.gamma`, `norm2`, `mlp`, `ls2.gamma`).
pub fn block(
    w: &mut Weights,
    prefix: &str,
    c: i64,
    heads: i64,
    act: Activation,
    eps: f64,
) -> Result<Block, WeightError> {
    Ok(Block {
        norm1: layer_norm(w, &format!("{prefix}.norm1"), c, eps)?,
        attn: attention(w, prefix, c, heads)?,
        ls1: w.take_opt(&format!("{prefix}.ls1.gamma"), &[c])?,
        norm2: layer_norm(w, &format!("{prefix}.norm2"), c, eps)?,
        mlp: mlp(w, prefix, c, act)?,
        ls2: w.take_opt(&format!("{prefix}.ls2.gamma"), &[c])?,
    })
}
