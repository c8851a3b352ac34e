//! HF transformers layouts → timm names.

use tch::Tensor;

use super::{class_token, fuse_qkv, pos_table, rename_pair};
use maetok_nn::weights::{WeightError, Weights};

/// `Dinov2Model` / `Dinov2WithRegistersModel`.
///
/// HF adds `position_embeddings[0]` to the class token and inserts registers after it without
/// positions; timm's equivalent (`no_embed_class`) keeps positions for patches only. So with
/// registers the class token absorbs its position row, which is exactly how timm's own
/// `*_reg4_dinov2` weights are stored. Without registers the table keeps its class row.
pub(super) fn dinov2_to_timm(w: &mut Weights) -> Result<(), WeightError> {
    w.take_any("embeddings.mask_token").ok();
    let pos_key = "embeddings.position_embeddings";
    let cls_key = "embeddings.cls_token";
    if w.contains("embeddings.register_tokens") {
        let pos = w.take_any(pos_key)?;
        let cls = w.take_any(cls_key)?;
        let cls = cls + pos.narrow(1, 0, 1);
        let n = pos.size()[1];
        w.insert("cls_token", cls, &format!("{cls_key} + {pos_key}[0]"));
        w.insert("pos_embed", pos.narrow(1, 1, n - 1), pos_key);
        w.rename("embeddings.register_tokens", "reg_token");
    } else {
        if !w.rename(cls_key, "cls_token") {
            return Err(w.missing(cls_key, None));
        }
        pos_table(w, pos_key)?;
    }
    rename_pair(
        w,
        "embeddings.patch_embeddings.projection",
        "patch_embed.proj",
    )?;
    for i in 0..w.count_indexed("encoder.layer.") {
        let s = format!("encoder.layer.{i}");
        let t = format!("blocks.{i}");
        rename_pair(w, &format!("{s}.norm1"), &format!("{t}.norm1"))?;
        for part in ["weight", "bias"] {
            let keys =
                ["query", "key", "value"].map(|p| format!("{s}.attention.attention.{p}.{part}"));
            fuse_qkv(w, keys, &format!("{t}.attn.qkv.{part}"))?;
        }
        rename_pair(
            w,
            &format!("{s}.attention.output.dense"),
            &format!("{t}.attn.proj"),
        )?;
        w.rename(
            &format!("{s}.layer_scale1.lambda1"),
            &format!("{t}.ls1.gamma"),
        );
        w.rename(
            &format!("{s}.layer_scale2.lambda1"),
            &format!("{t}.ls2.gamma"),
        );
        rename_pair(w, &format!("{s}.norm2"), &format!("{t}.norm2"))?;
        if w.contains(&format!("{s}.mlp.weights_in.weight")) {
            rename_pair(w, &format!("{s}.mlp.weights_in"), &format!("{t}.mlp.fc1"))?;
            rename_pair(w, &format!("{s}.mlp.weights_out"), &format!("{t}.mlp.fc2"))?;
        } else {
            rename_pair(w, &format!("{s}.mlp.fc1"), &format!("{t}.mlp.fc1"))?;
            rename_pair(w, &format!("{s}.mlp.fc2"), &format!("{t}.mlp.fc2"))?;
        }
    }
    rename_pair(w, "layernorm", "norm")
}

/// `SiglipVisionModel` (`clip = false`) and `CLIPVisionModel` (`clip = true`): the same
/// encoder layout; CLIP adds a class embedding and `pre_layrnorm` (sic), and has no patch
/// bias. HF's `post_layernorm` is timm's final `norm` (for CLIP, HF applies it to the class
/// token only; timm semantics, which we follow, apply it to every token).
pub(super) fn siglip_to_timm(w: &mut Weights, clip: bool) -> Result<(), WeightError> {
    if clip {
        class_token(w, "embeddings.class_embedding")?;
        rename_pair(w, "pre_layrnorm", "norm_pre")?;
    }
    w.drop_prefix("head.");
    rename_pair(w, "embeddings.patch_embedding", "patch_embed.proj")?;
    pos_table(w, "embeddings.position_embedding.weight")?;
    for i in 0..w.count_indexed("encoder.layers.") {
        let s = format!("encoder.layers.{i}");
        let t = format!("blocks.{i}");
        rename_pair(w, &format!("{s}.layer_norm1"), &format!("{t}.norm1"))?;
        for part in ["weight", "bias"] {
            let keys = ["q_proj", "k_proj", "v_proj"].map(|p| format!("{s}.self_attn.{p}.{part}"));
            fuse_qkv(w, keys, &format!("{t}.attn.qkv.{part}"))?;
        }
        rename_pair(
            w,
            &format!("{s}.self_attn.out_proj"),
            &format!("{t}.attn.proj"),
        )?;
        rename_pair(w, &format!("{s}.layer_norm2"), &format!("{t}.norm2"))?;
        rename_pair(w, &format!("{s}.mlp.fc1"), &format!("{t}.mlp.fc1"))?;
        rename_pair(w, &format!("{s}.mlp.fc2"), &format!("{t}.mlp.fc2"))?;
    }
    rename_pair(w, "post_layernorm", "norm")?;
    // Whole-model CLIP/SigLIP files: projection heads and scalars of the contrastive model.
    for k in [
        "visual_projection.weight",
        "text_projection.weight",
        "logit_scale",
        "logit_bias",
    ] {
        let _: Option<Tensor> = w.take_any(k).ok();
    }
    Ok(())
}
