//! The shallow auxiliary decoders of mask modeling (spec §4.1): each predicts one target
//! (HOG, DINOv2, SigLIP/CLIP) for every image token from the latent alone, through its own
//! small MoVQ decoder (`decoder_{name}.*`, with a class token), `post_quant_conv_{name}` and
//! `to_pixel_{name}` (192 → target dim). Only training uses them; the released `AEModel`
//! checkpoint does not carry them.

use maetok_teachers::nn::save;
use maetok_teachers::weights::{WeightError, Weights};
use tch::Tensor;

use super::decoder::{Decoder, DecoderNames};

/// How an auxiliary prediction is scored against its target (spec §4.2–§4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuxLoss {
    /// Mean squared error over masked tokens and all features (HOG).
    Mse,
    /// Negative cosine per masked token, averaged (DINOv2, SigLIP, CLIP).
    Cosine,
}

pub struct AuxDecoder {
    /// `hog`, `dino` or `clip`: the reference's module suffix.
    pub name: String,
    pub loss: AuxLoss,
    pub decoder: Decoder,
}

impl AuxDecoder {
    /// `decoder_{name}.*`, `post_quant_conv_{name}`, `to_pixel_{name}` from `w`.
    pub fn from_weights(
        w: &mut Weights,
        name: &str,
        loss: AuxLoss,
        latent_dim: i64,
        heads: i64,
    ) -> Result<Self, WeightError> {
        let decoder = tch::no_grad(|| {
            Decoder::from_weights_named(w, DecoderNames::aux(name), latent_dim, |_| heads)
        })?;
        Ok(Self {
            name: name.to_string(),
            loss,
            decoder,
        })
    }

    /// Latents (B, L, C_z) → predictions (B, N, target dim).
    pub fn forward(&self, z: &Tensor, grid: (i64, i64)) -> Tensor {
        self.decoder.forward_tokens(z, grid)
    }

    /// The loss of `pred` against `target` (B, N, D) over the tokens where `mask` (B, N)
    /// is true (`aux_loss_mask: True`).
    pub fn loss(&self, pred: &Tensor, target: &Tensor, mask: &Tensor) -> Tensor {
        aux_loss(self.loss, pred, target, mask)
    }

    pub fn params(&self, out: &mut save::Named) {
        self.decoder.params(out);
    }

    pub fn state_dict(&self, out: &mut save::Named) {
        self.decoder.state_dict(out);
    }
}

/// Spec §4.2: `Σ_masked (pred − target)² / #masked / D`; §4.3: `−cos(pred, target)` per
/// token (both L2-normalised, eps 1e-12 as `F.normalize`), averaged over masked tokens.
pub fn aux_loss(kind: AuxLoss, pred: &Tensor, target: &Tensor, mask: &Tensor) -> Tensor {
    let pred = pred.to_kind(tch::Kind::Float);
    let target = target.to_kind(tch::Kind::Float);
    let m = mask.to_kind(tch::Kind::Float).unsqueeze(-1); // (B, N, 1)
    let count = m.sum(tch::Kind::Float);
    match kind {
        AuxLoss::Mse => {
            let d = *pred.size().last().unwrap_or(&1) as f64;
            ((&pred - &target).square() * &m).sum(tch::Kind::Float) / count / d
        }
        AuxLoss::Cosine => {
            let unit = |t: &Tensor| t / t.norm_scalaropt_dim(2.0, [-1], true).clamp_min(1e-12);
            let cos = (unit(&pred) * unit(&target)).sum_dim_intlist(-1, true, tch::Kind::Float);
            -(cos * &m).sum(tch::Kind::Float) / count
        }
    }
}
