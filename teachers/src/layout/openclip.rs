//! OpenCLIP's `VisionTransformer` (`visual.*`, also OpenAI's original CLIP) → timm names.

use super::{class_token, pos_table, rename_pair};
use maetok_nn::weights::{WeightError, Weights};

pub(super) fn to_timm(w: &mut Weights) -> Result<(), WeightError> {
    if w.contains("visual.conv1.weight") {
        let text: Vec<String> = w
            .keys()
            .filter(|k| !k.starts_with("visual."))
            .cloned()
            .collect();
        for k in text {
            w.take_any(&k).ok();
        }
        w.strip_prefix("visual.");
    }
    class_token(w, "class_embedding")?;
    pos_table(w, "positional_embedding")?;
    rename_pair(w, "conv1", "patch_embed.proj")?;
    rename_pair(w, "ln_pre", "norm_pre")?;
    for i in 0..w.count_indexed("transformer.resblocks.") {
        let s = format!("transformer.resblocks.{i}");
        let t = format!("blocks.{i}");
        rename_pair(w, &format!("{s}.ln_1"), &format!("{t}.norm1"))?;
        if !w.rename(
            &format!("{s}.attn.in_proj_weight"),
            &format!("{t}.attn.qkv.weight"),
        ) {
            return Err(w.missing(&format!("{s}.attn.in_proj_weight"), None));
        }
        if !w.rename(
            &format!("{s}.attn.in_proj_bias"),
            &format!("{t}.attn.qkv.bias"),
        ) {
            return Err(w.missing(&format!("{s}.attn.in_proj_bias"), None));
        }
        rename_pair(w, &format!("{s}.attn.out_proj"), &format!("{t}.attn.proj"))?;
        rename_pair(w, &format!("{s}.ln_2"), &format!("{t}.norm2"))?;
        rename_pair(w, &format!("{s}.mlp.c_fc"), &format!("{t}.mlp.fc1"))?;
        rename_pair(w, &format!("{s}.mlp.c_proj"), &format!("{t}.mlp.fc2"))?;
    }
    rename_pair(w, "ln_post", "norm")?;
    w.take_any("proj").ok();
    Ok(())
}
