//! Every value of a training config checked before anything is built: against itself here
//! ([`check`]), and against the shard folder it trains on ([`check_against_shards`]). Each
//! error names the key as the TOML file spells it and the values that are allowed, so a
//! bad config fails in the first second instead of panicking inside libtorch (a zero
//! patch size, a head count that does not divide the width) or training on NaN.

use maetok_models::maetok::aux::AuxLoss;
use maetok_pipeline::shard::reader::ShardFolder;

use super::config::TrainConfig;

/// `key = value` must be at least 1.
fn positive(key: &str, v: i64) -> Result<(), String> {
    if v < 1 {
        return Err(format!("{key} = {v}: must be at least 1"));
    }
    Ok(())
}

/// `key = value` must be a finite number in `[lo, hi]` (`hi` open when `open_hi`).
fn within(key: &str, v: f64, lo: f64, hi: f64, open_hi: bool) -> Result<(), String> {
    let ok = v.is_finite() && v >= lo && if open_hi { v < hi } else { v <= hi };
    if !ok {
        let hi_s = if hi.is_infinite() {
            "∞)".to_string()
        } else if open_hi {
            format!("{hi})")
        } else {
            format!("{hi}]")
        };
        return Err(format!(
            "{key} = {v}: must be a finite number in [{lo}, {hi_s}"
        ));
    }
    Ok(())
}

/// `key = value` must be finite and > 0.
fn finite_positive(key: &str, v: f64) -> Result<(), String> {
    if !(v.is_finite() && v > 0.0) {
        return Err(format!("{key} = {v}: must be a finite number above 0"));
    }
    Ok(())
}

fn non_negative(key: &str, v: f64) -> Result<(), String> {
    within(key, v, 0.0, f64::INFINITY, true)
}

/// Heads must divide the width into heads whose width 2-D RoPE can split in four.
fn heads(key: &str, width: i64, heads: i64) -> Result<(), String> {
    if heads < 1 || width % heads != 0 || (width / heads) % 4 != 0 {
        return Err(format!(
            "{key} = {width} / {heads}: the heads must divide the width into heads whose \
             width is a multiple of 4 (2-D RoPE), e.g. {}",
            suggest_heads(width)
        ));
    }
    Ok(())
}

/// Head counts that fit `width` (for the error message).
fn suggest_heads(width: i64) -> String {
    let ok: Vec<String> = (1..=width.clamp(1, 64))
        .filter(|h| width % h == 0 && (width / h) % 4 == 0)
        .map(|h| h.to_string())
        .collect();
    if ok.is_empty() {
        "none: the width must be a multiple of 4".into()
    } else {
        format!("one of {}", ok.join(", "))
    }
}

/// The config against itself.
pub fn check(c: &TrainConfig) -> Result<(), String> {
    let m = &c.model;
    if m.decoder != "movq" && m.decoder != "plain" {
        return Err(format!(
            "model.decoder = {:?}: expected \"movq\" or \"plain\"",
            m.decoder
        ));
    }
    for (k, v) in [
        ("model.image_size", m.image_size),
        ("model.patch_size", m.patch_size),
        ("model.width", m.width),
        ("model.enc_depth", m.enc_depth),
        ("model.dec_depth", m.dec_depth),
        ("model.mlp_ratio", m.mlp_ratio),
        ("model.num_latent_tokens", m.num_latent_tokens),
        ("model.latent_dim", m.latent_dim),
        ("model.aux_width", m.aux_width),
        ("model.aux_depth", m.aux_depth),
        ("model.aux_mlp", m.aux_mlp),
    ] {
        positive(k, v)?;
    }
    if m.image_size % m.patch_size != 0 {
        return Err(format!(
            "model.image_size = {} is not a multiple of model.patch_size = {}",
            m.image_size, m.patch_size
        ));
    }
    heads("model.width / model.enc_heads", m.width, m.enc_heads)?;
    heads("model.width / model.dec_heads", m.width, m.dec_heads)?;
    heads(
        "model.aux_width / model.aux_heads",
        m.aux_width,
        m.aux_heads,
    )?;
    finite_positive("model.rope_theta", m.rope_theta)?;
    non_negative("model.layer_scale_init", m.layer_scale_init)?;

    if !m.mask_modeling && !c.aux.is_empty() {
        return Err(format!(
            "model.mask_modeling = false with {} [[aux]] decoder(s): auxiliary decoders \
             predict the features of masked tokens, and a plain autoencoder masks none; \
             remove the [[aux]] tables and write `aux = []` before the first table (a \
             config without either gets the paper's three)",
            c.aux.len()
        ));
    }
    let mut names: Vec<&str> = c.aux.iter().map(|a| a.name.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err(format!("aux: a name appears twice ({names:?})"));
    }
    for a in &c.aux {
        if a.name.is_empty()
            || !a
                .name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        {
            return Err(format!(
                "aux.name = {:?}: expected letters, digits and `_` (it names the module, \
                 `decoder_<name>`)",
                a.name
            ));
        }
        non_negative(&format!("aux `{}`: weight", a.name), a.weight)?;
        if a.loss == AuxLoss::Caption && a.target != "text_ids" {
            return Err(format!(
                "aux `{}`: loss = \"caption\" reads target \"text_ids\", not {:?}",
                a.name, a.target
            ));
        }
    }

    let d = &c.data;
    if d.batch_size == 0 {
        return Err("data.batch_size = 0: must be at least 1".into());
    }
    if d.prefetch == 0 {
        return Err("data.prefetch = 0: must be at least 1 (batches decoded ahead)".into());
    }
    maetok_pipeline::threads::resolve("data.decode_threads =", d.decode_threads)?;
    if d.shards.as_os_str().is_empty() {
        return Err("data.shards: the shard folder to train on is not set".into());
    }

    let o = &c.optim;
    finite_positive("optim.lr", o.lr)?;
    if o.lr_batch_ref == 0 {
        return Err("optim.lr_batch_ref = 0: must be at least 1".into());
    }
    within("optim.min_lr_ratio", o.min_lr_ratio, 0.0, 1.0, false)?;
    non_negative("optim.warmup_lr_init", o.warmup_lr_init)?;
    within("optim.beta1", o.beta1, 0.0, 1.0, true)?;
    within("optim.beta2", o.beta2, 0.0, 1.0, true)?;
    finite_positive("optim.eps", o.eps)?;
    non_negative("optim.weight_decay", o.weight_decay)?;
    non_negative("optim.grad_clip", o.grad_clip)?;
    within("optim.ema_decay", o.ema_decay, 0.0, 1.0, false)?;

    let l = &c.losses;
    non_negative("losses.pixel_weight", l.pixel_weight)?;
    non_negative("losses.perceptual_weight", l.perceptual_weight)?;
    if l.perceptual_weight > 0.0 && (l.lpips_vgg.is_none() || l.lpips_heads.is_none()) {
        return Err(
            "losses.perceptual_weight > 0 needs losses.lpips_vgg (VGG16 `features.*` \
             safetensors) and losses.lpips_heads (LPIPS v0.1 heads); see docs/training.md \
             for the files, or set losses.perceptual_weight = 0"
                .into(),
        );
    }

    let g = &c.gan;
    non_negative("gan.disc_weight", g.disc_weight)?;
    non_negative("gan.lecam_weight", g.lecam_weight)?;
    within("gan.lecam_decay", g.lecam_decay, 0.0, 1.0, false)?;
    non_negative("gan.cr_weight", g.cr_weight)?;
    if g.disc_weight > 0.0 {
        if g.backbone.is_none() {
            return Err(
                "gan.disc_weight > 0 needs gan.backbone (DINO ViT-S/16: timm \
                 `vit_small_patch16_224.dino` model.safetensors; see docs/training.md), or \
                 set gan.disc_weight = 0"
                    .into(),
            );
        }
        positive("gan.backbone_heads", g.backbone_heads)?;
    }

    let t = &c.train;
    if t.steps == 0 {
        return Err("train.steps = 0: must be at least 1".into());
    }
    maetok_nn::device::device_name(&t.device)
        .map_err(|e| format!("train.device = {:?}: {e}", t.device))?;

    within(
        "decoder_ft.mask_ratio_start",
        c.decoder_ft.mask_ratio_start,
        0.0,
        1.0,
        true,
    )?;

    let d = &c.dist;
    if !["auto", "cpu", "nccl"].contains(&d.backend.as_str()) {
        return Err(format!(
            "dist.backend = {:?}: expected \"auto\" (NCCL on CUDA when libnccl.so loads, else \
             the CPU backend), \"nccl\" or \"cpu\"",
            d.backend
        ));
    }
    finite_positive("dist.timeout_s", d.timeout_s)?;
    finite_positive("dist.bucket_mb", d.bucket_mb)?;
    Ok(())
}

/// The config against the shard folder it trains on, before the first step: the stored
/// resolution is the model's input size, and every target an auxiliary decoder reads is a
/// column there. `image_size` is the model's (the config's for a fresh stage-1 model, the
/// checkpoint's otherwise); `aux_on`: stage 1, which reads the targets.
pub fn check_against_shards(
    c: &TrainConfig,
    folder: &ShardFolder,
    image_size: i64,
    aux_on: bool,
) -> Result<(), String> {
    let dir = folder.dir().display();
    let res = folder.resolution();
    if res != 0 && res as i64 != image_size {
        return Err(format!(
            "{dir}: the shards hold {res}×{res} views, but the model takes {image_size}×{image_size} \
             images (model.image_size, or the checkpoint's config.json): set model.image_size = \
             {res} or preprocess at --resolution {image_size}"
        ));
    }
    if !aux_on {
        return Ok(());
    }
    for a in &c.aux {
        if a.loss == AuxLoss::Caption {
            if folder.manifest().text.is_none() {
                return Err(format!(
                    "aux `{}` (loss = \"caption\") reads `text_ids`, but {dir} holds no captions \
                     tokenised (preprocess with captions and a [text] section)",
                    a.name
                ));
            }
        } else if let Err(e) = folder.target(&a.target) {
            return Err(format!("aux `{}`: target = {:?}: {e}", a.name, a.target));
        }
    }
    Ok(())
}
