//! The generator objective's image terms at one step (spec §5.1, reference `vq_loss.py`
//! with `optimizer_idx = 0`): `w_rec · MSE + w_p(step) · LPIPS + w_adapt · w_d(step) · L_gen`.
//! The auxiliary terms are added by the loop (they need the latent and the mask).

use tch::Tensor;

use crate::losses::diffaug::Draws;
use crate::losses::disc::Discriminator;
use crate::losses::gan::{adaptive_weight, generator_loss};
use maetok_teachers::lpips::Lpips;

use super::config::TrainConfig;
use super::pool::Pool;
use super::rng::SplitMix;

pub struct PixelObjective {
    /// The weighted sum (with autograd graph).
    pub loss: Tensor,
    /// Unweighted terms for logging: `rec`, `lpips`, `gan_g`.
    pub terms: Vec<(String, Tensor)>,
    /// Scalars for logging (`adaptive_weight`).
    pub gan_log: Vec<(String, f64)>,
    /// On W > 1 ranks, what backward adds to `loss`: the pooled adversarial term's other
    /// W − 1 shares (`Pool`), so the average over the ranks is the global gradient while
    /// `loss` stays the objective's value.
    pub backward_extra: Option<Tensor>,
}

/// `x` the input, `xhat` its reconstruction (both (B, 3, H, W) in [-1, 1]); `last_layer`
/// the `to_pixel` weight; `step` 0-based; `dropout_keys` one key per row for the LPIPS
/// heads' dropout masks (`train::rng::Stream::Dropout`); `pool` what the GAN terms share
/// with the job's other ranks.
#[allow(clippy::too_many_arguments)]
pub fn pixel_objective(
    x: &Tensor,
    xhat: &Tensor,
    cfg: &TrainConfig,
    step: u64,
    lpips: Option<&Lpips>,
    disc: Option<&Discriminator>,
    last_layer: &Tensor,
    aug: &mut impl Draws,
    crop: &mut SplitMix,
    dropout_keys: &[u64],
    pool: &mut Pool,
) -> Result<PixelObjective, maetok_dist::DistError> {
    let rec = (xhat - x).square().mean(tch::Kind::Float);
    let mut terms: Vec<(String, Tensor)> = vec![("rec".into(), rec.shallow_clone())];
    let mut loss = rec * cfg.losses.pixel_weight;
    if let Some(lp) = lpips {
        let p = lp
            .forward(x, xhat, cfg.losses.lpips_dropout.then_some(dropout_keys))
            .mean(tch::Kind::Float);
        loss += &p * cfg.losses.perceptual_at(step);
        terms.push(("lpips".into(), p));
    }
    let global_step = step + 1;
    let mut gan_log = Vec::new();
    let mut backward_extra = None;
    if let Some(d) = disc.filter(|_| cfg.gan.active(global_step)) {
        let g_loss = generator_loss(d, xhat, &cfg.gan, aug, crop, pool)?;
        // The adaptive weight compares the reconstruction terms' pull on `to_pixel` with
        // the adversarial one's (the auxiliary terms are not in it).
        let w = if cfg.gan.adaptive_weight {
            adaptive_weight(&loss, &g_loss, last_layer, pool)?
        } else {
            1.0
        };
        let weight = w * cfg.gan.disc_weight_at(global_step);
        loss += &g_loss * weight;
        // Rank r's gradient of the pooled loss is 1/W of what the loop's average over the
        // ranks expects (`Pool`).
        let world = pool.world();
        if world > 1 {
            backward_extra = Some(&g_loss * (weight * (world - 1) as f64));
        }
        gan_log.push(("adaptive_weight".to_string(), w));
        terms.push(("gan_g".into(), g_loss));
    }
    Ok(PixelObjective {
        loss,
        terms,
        gan_log,
        backward_extra,
    })
}
