//! The key layouts teachers are published in, detected from the keys, and converted to
//! timm's names (the layout [`crate::vit::VisionTransformer`] reads):
//!
//! | layout | recognised by | typical file |
//! |---|---|---|
//! | timm | `patch_embed.proj.weight` | `timm/vit_large_patch14_dinov2.lvd142m/model.safetensors` |
//! | HF DINOv2 | `embeddings.patch_embeddings.projection.weight` | `facebook/dinov2-large/model.safetensors` |
//! | HF SigLIP | `…embeddings.patch_embedding.weight`, no `class_embedding` | `google/siglip-so400m-patch14-224/model.safetensors` |
//! | HF CLIP | `…embeddings.class_embedding` | `openai/clip-vit-base-patch16/model.safetensors` |
//! | OpenCLIP | `visual.conv1.weight` | `open_clip_model.safetensors` (OpenCLIP hub repos) |
//!
//! Text towers and pooling heads in the same file are dropped.

mod hf;
mod openclip;

use maetok_nn::weights::{WeightError, Weights};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    Timm,
    HfDinov2,
    HfSiglip,
    HfClip,
    OpenClip,
}

impl Layout {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timm => "timm",
            Self::HfDinov2 => "hf_dinov2",
            Self::HfSiglip => "hf_siglip",
            Self::HfClip => "hf_clip",
            Self::OpenClip => "open_clip",
        }
    }
}

/// Strip the wrappers whole-model checkpoints put around the vision tower.
fn unwrap_prefixes(w: &mut Weights) {
    for prefix in ["module.", "model."] {
        if w.keys().all(|k| k.starts_with(prefix)) {
            w.strip_prefix(prefix);
        }
    }
    if w.contains("dinov2.embeddings.patch_embeddings.projection.weight") {
        w.strip_prefix("dinov2.");
    }
    if w.contains("vision_model.embeddings.patch_embedding.weight") {
        w.drop_prefix("text_model.");
        w.strip_prefix("vision_model.");
    }
}

/// Detect the layout of `w` (after unwrapping common prefixes).
pub fn detect(w: &mut Weights) -> Result<Layout, WeightError> {
    unwrap_prefixes(w);
    let layout = if w.contains("patch_embed.proj.weight") {
        Layout::Timm
    } else if w.contains("embeddings.patch_embeddings.projection.weight") {
        Layout::HfDinov2
    } else if w.contains("embeddings.patch_embedding.weight") {
        if w.contains("embeddings.class_embedding") {
            Layout::HfClip
        } else {
            Layout::HfSiglip
        }
    } else if w.contains("visual.conv1.weight") || w.contains("conv1.weight") {
        Layout::OpenClip
    } else {
        let mut sample: Vec<_> = w.keys().take(6).cloned().collect();
        sample.sort();
        return Err(w.layout_error(format!(
            "not a ViT checkpoint in a layout maetok reads (timm, HF DINOv2/SigLIP/CLIP, \
             OpenCLIP); its keys start with {sample:?}"
        )));
    };
    Ok(layout)
}

/// Convert to timm names in place.
pub fn to_timm(w: &mut Weights, layout: Layout) -> Result<(), WeightError> {
    match layout {
        Layout::Timm => Ok(()),
        Layout::HfDinov2 => hf::dinov2_to_timm(w),
        Layout::HfSiglip => hf::siglip_to_timm(w, false),
        Layout::HfClip => hf::siglip_to_timm(w, true),
        Layout::OpenClip => openclip::to_timm(w),
    }
}

/// Concatenate separate q, k, v projections into timm's fused `qkv` (rows [q | k | v]).
fn fuse_qkv(w: &mut Weights, keys: [String; 3], to: &str) -> Result<(), WeightError> {
    let origin = keys.join(", ");
    let mut parts = Vec::with_capacity(3);
    for k in &keys {
        parts.push(w.take_any(k)?);
    }
    w.insert(to, tch::Tensor::cat(&parts, 0), &origin);
    Ok(())
}

/// Rename a weight+bias pair (`{from}.weight` → `{to}.weight`, same for bias); the weight is
/// required, the bias optional.
fn rename_pair(w: &mut Weights, from: &str, to: &str) -> Result<(), WeightError> {
    if !w.rename(&format!("{from}.weight"), &format!("{to}.weight")) {
        return Err(w.missing(&format!("{from}.weight"), None));
    }
    w.rename(&format!("{from}.bias"), &format!("{to}.bias"));
    Ok(())
}

/// `(N, C)` position table → timm's `(1, N, C)`.
fn pos_table(w: &mut Weights, from: &str) -> Result<(), WeightError> {
    let t = w.take_any(from)?;
    let t = if t.dim() == 2 { t.unsqueeze(0) } else { t };
    w.insert("pos_embed", t, from);
    Ok(())
}

/// `(C,)` class embedding → timm's `(1, 1, C)`.
fn class_token(w: &mut Weights, from: &str) -> Result<(), WeightError> {
    let t = w.take_any(from)?;
    let t = t.reshape([1, 1, -1]);
    w.insert("cls_token", t, from);
    Ok(())
}
