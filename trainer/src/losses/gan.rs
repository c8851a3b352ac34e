//! The adversarial terms of spec §5.1–§5.2, as the reference's `losses/vq_loss.py` computes
//! them: the generator's hinge loss `−mean D(aug(x̂))` with the adaptive weight
//! `clamp(‖∇_W L_nll‖ / (‖∇_W L_gen‖ + 1e-4), 0, 1e4)` on the `to_pixel` weight W, and the
//! discriminator's `w_d (hinge + λ_LeCAM · LeCAM) + w_cr · CR` with LeCAM's logit EMAs
//! updated before the regulariser and the consistency term against strongly augmented
//! copies. `global_step` is the reference's (the 0-based step + 1).

use tch::Tensor;

use super::diffaug::{diff_augment, Draws};
use super::disc::Discriminator;
use crate::train::pool::Pool;
use crate::train::rng::SplitMix;
use maetok_dist::DistError;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GanConfig {
    /// λ2, the adversarial weight once the discriminator starts; 0 turns the GAN off.
    pub disc_weight: f64,
    /// First `global_step` with the adversarial terms on.
    pub disc_start: u64,
    pub adaptive_weight: bool,
    pub lecam_weight: f64,
    pub lecam_decay: f64,
    /// Consistency-regularisation weight (after `disc_start`).
    pub cr_weight: f64,
    pub diff_aug: bool,
    /// DINO ViT-S/16 backbone (timm `vit_small_patch16_224.dino` model.safetensors).
    pub backbone: Option<std::path::PathBuf>,
    pub backbone_heads: i64,
}

impl Default for GanConfig {
    fn default() -> Self {
        Self {
            disc_weight: 0.4,
            disc_start: 30_000,
            adaptive_weight: true,
            lecam_weight: 0.001,
            lecam_decay: 0.999,
            cr_weight: 4.0,
            diff_aug: true,
            backbone: None,
            backbone_heads: 6,
        }
    }
}

pub const POLICY: &str = "color,translation,cutout_0.2";
pub const STRONG_POLICY: &str = "color,translation,cutout_0.5";

impl GanConfig {
    /// The adversarial weight at `global_step` (`adopt_weight`).
    pub fn disc_weight_at(&self, global_step: u64) -> f64 {
        if global_step < self.disc_start {
            0.0
        } else {
            self.disc_weight
        }
    }

    pub fn active(&self, global_step: u64) -> bool {
        self.disc_weight > 0.0 && global_step >= self.disc_start
    }
}

/// LeCAM's EMAs of the batch-mean logits (start 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LeCam {
    pub real: f64,
    pub fake: f64,
}

/// ‖∇_W a‖ / (‖∇_W b‖ + 1e-4), clamped to [0, 1e4], graph kept: `a` this rank's
/// reconstruction terms (their gradients averaged over the ranks), `b` the pooled
/// adversarial loss (its per-rank gradients summed, `Pool`).
pub fn adaptive_weight(
    nll: &Tensor,
    g: &Tensor,
    last_layer: &Tensor,
    pool: &mut Pool,
) -> Result<f64, DistError> {
    let ga = Tensor::run_backward(&[nll], &[last_layer], true, false);
    let gb = Tensor::run_backward(&[g], &[last_layer], true, false);
    let (ga, gb) = (pool.mean(&ga[0])?, pool.sum(&gb[0])?);
    let w = ga.norm() / (gb.norm() + 1e-4);
    Ok(f64::try_from(w.clamp(0.0, 1e4)).unwrap_or(f64::NAN))
}

/// The discriminator's logits for the job's whole batch: this rank's backbone readings
/// pooled with every other rank's, then the heads (`Pool`).
fn pooled_logits(
    disc: &Discriminator,
    x: &Tensor,
    crop: &mut SplitMix,
    pool: &mut Pool,
) -> Result<Tensor, DistError> {
    let readings = disc
        .readings(x, crop)
        .iter()
        .map(|r| pool.gather(r))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(disc.heads_forward(&readings, true))
}

/// The generator's adversarial loss `−mean D(aug(x̂))` over the job's whole batch (its
/// gradient on this rank flows through this rank's samples only: `Pool`).
pub fn generator_loss(
    disc: &Discriminator,
    xhat: &Tensor,
    cfg: &GanConfig,
    aug: &mut impl Draws,
    crop: &mut SplitMix,
    pool: &mut Pool,
) -> Result<Tensor, DistError> {
    let x = if cfg.diff_aug {
        diff_augment(xhat, POLICY, 0.5, aug)
    } else {
        xhat.shallow_clone()
    };
    Ok(-pooled_logits(disc, &x, crop, pool)?.mean(tch::Kind::Float))
}

/// The discriminator's loss on `x` and detached `xhat`, and the terms for logging.
pub struct DiscLoss {
    pub loss: Tensor,
    pub hinge: f64,
    pub lecam: f64,
    pub cr: f64,
    pub logits_real: f64,
    pub logits_fake: f64,
}

#[allow(clippy::too_many_arguments)]
pub fn discriminator_loss(
    disc: &Discriminator,
    x: &Tensor,
    xhat: &Tensor,
    cfg: &GanConfig,
    global_step: u64,
    lecam: &mut LeCam,
    aug: &mut impl Draws,
    crop: &mut SplitMix,
    pool: &mut Pool,
) -> Result<DiscLoss, DistError> {
    let xhat = xhat.detach();
    let mut augment = |t: &Tensor, policy: &str, prob: f64| -> Tensor {
        if cfg.diff_aug || prob >= 1.0 {
            diff_augment(t, policy, prob, aug)
        } else {
            t.shallow_clone()
        }
    };
    // Pooled: every rank computes the same logits, losses and head gradients.
    let real = pooled_logits(disc, &augment(x, POLICY, 0.5), crop, pool)?;
    let fake = pooled_logits(disc, &augment(&xhat, POLICY, 0.5), crop, pool)?;
    let w = cfg.disc_weight_at(global_step);
    let (mr, mf) = (
        f64::try_from(real.mean(tch::Kind::Float)).unwrap_or(f64::NAN),
        f64::try_from(fake.mean(tch::Kind::Float)).unwrap_or(f64::NAN),
    );
    let hinge = ((-&real + 1.0).relu().mean(tch::Kind::Float)
        + (&fake + 1.0).relu().mean(tch::Kind::Float))
        * 0.5;
    let mut loss = &hinge * w;
    let mut lecam_v = 0.0;
    if cfg.lecam_weight > 0.0 {
        lecam.real = lecam.real * cfg.lecam_decay + mr * (1.0 - cfg.lecam_decay);
        lecam.fake = lecam.fake * cfg.lecam_decay + mf * (1.0 - cfg.lecam_decay);
        let reg = (&real - lecam.fake).relu().square().mean(tch::Kind::Float)
            + (-&fake + lecam.real).relu().square().mean(tch::Kind::Float);
        lecam_v = f64::try_from(&reg).unwrap_or(f64::NAN);
        loss = (&hinge + reg * cfg.lecam_weight) * w;
    }
    let mut cr_v = 0.0;
    if cfg.cr_weight > 0.0 {
        let real_s = pooled_logits(disc, &augment(x, STRONG_POLICY, 1.0), crop, pool)?;
        let fake_s = pooled_logits(disc, &augment(&xhat, STRONG_POLICY, 1.0), crop, pool)?;
        let cw = if global_step >= cfg.disc_start {
            cfg.cr_weight
        } else {
            0.0
        };
        let cr = Tensor::cat(&[&real, &fake], 0)
            .mse_loss(&Tensor::cat(&[real_s, fake_s], 0), tch::Reduction::Mean);
        cr_v = f64::try_from(&cr).unwrap_or(f64::NAN);
        loss += cr * cw;
    }
    Ok(DiscLoss {
        loss,
        hinge: f64::try_from(&hinge).unwrap_or(f64::NAN),
        lecam: lecam_v,
        cr: cr_v,
        logits_real: mr,
        logits_fake: mf,
    })
}
