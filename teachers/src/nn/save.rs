//! The inverse of [`super::load`]: blocks back to timm-named tensors, for writing
//! checkpoints in the layouts they were read from.

use tch::Tensor;

use super::{Attention, Block, LayerNorm, Linear, Mlp};

pub type Named = Vec<(String, Tensor)>;

/// Appends (handles to) already-named tensors.
pub fn extend(out: &mut Named, named: &[(String, Tensor)]) {
    out.extend(named.iter().map(|(k, v)| (k.clone(), v.shallow_clone())));
}

pub fn linear(out: &mut Named, prefix: &str, l: &Linear) {
    out.push((format!("{prefix}.weight"), l.weight.shallow_clone()));
    if let Some(b) = &l.bias {
        out.push((format!("{prefix}.bias"), b.shallow_clone()));
    }
}

/// Affine LayerNorms only (affine-free ones have no tensors).
pub fn layer_norm(out: &mut Named, prefix: &str, n: &LayerNorm) {
    if let (Some(w), Some(b)) = (&n.weight, &n.bias) {
        out.push((format!("{prefix}.weight"), w.shallow_clone()));
        out.push((format!("{prefix}.bias"), b.shallow_clone()));
    }
}

pub fn attention(out: &mut Named, prefix: &str, a: &Attention) {
    linear(out, &format!("{prefix}.attn.qkv"), &a.qkv);
    linear(out, &format!("{prefix}.attn.proj"), &a.proj);
}

pub fn mlp(out: &mut Named, prefix: &str, m: &Mlp) {
    linear(out, &format!("{prefix}.mlp.fc1"), &m.fc1);
    linear(out, &format!("{prefix}.mlp.fc2"), &m.fc2);
}

pub fn block(out: &mut Named, prefix: &str, b: &Block) {
    layer_norm(out, &format!("{prefix}.norm1"), &b.norm1);
    attention(out, prefix, &b.attn);
    if let Some(g) = &b.ls1 {
        out.push((format!("{prefix}.ls1.gamma"), g.shallow_clone()));
    }
    layer_norm(out, &format!("{prefix}.norm2"), &b.norm2);
    mlp(out, prefix, &b.mlp);
    if let Some(g) = &b.ls2 {
        out.push((format!("{prefix}.ls2.gamma"), g.shallow_clone()));
    }
}
