//! The shallow auxiliary decoders of mask modeling (spec §4.1): each predicts one target
//! (HOG, DINOv2, SigLIP/CLIP) for every image token from the latent alone, through its own
//! small MoVQ decoder (`decoder_{name}.*`, with a class token), `post_quant_conv_{name}` and
//! `to_pixel_{name}` (192 → target dim). Only training uses them; the released `AEModel`
//! checkpoint does not carry them.

use maetok_nn::{VarBuilder, WeightError};
use tch::Tensor;

use super::decoder::{Decoder, DecoderNames};
use super::shape::{DecoderShape, MaetokShape};

/// How an auxiliary prediction is scored against its target (spec §4.2–§4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuxLoss {
    /// Mean squared error over masked tokens and all features (HOG).
    Mse,
    /// Negative cosine per masked token, averaged (DINOv2, SigLIP, CLIP).
    Cosine,
    /// The caption decoder (spec §4.5, UNCONFIRMED design, SuperClass-style): one pooled
    /// prediction per image over the BPE vocabulary, softmax cross-entropy against the
    /// caption's bag of ids normalised to sum 1; images without a caption are left out.
    Caption,
}

pub struct AuxDecoder {
    /// `hog`, `dino` or `clip`: the reference's module suffix.
    pub name: String,
    pub loss: AuxLoss,
    pub decoder: Decoder,
}

impl AuxDecoder {
    /// The part an auxiliary decoder's tensors are tagged with.
    pub fn part(name: &str) -> String {
        format!("aux.{name}")
    }

    /// `decoder_{name}.*`, `post_quant_conv_{name}`, `to_pixel_{name}` (`vb` at the state
    /// dict's root), reading latents of the tokenizer `s`.
    pub fn new(
        vb: &VarBuilder,
        name: &str,
        loss: AuxLoss,
        d: &DecoderShape,
        s: &MaetokShape,
    ) -> Result<Self, WeightError> {
        let decoder = Decoder::new(&vb.part(&Self::part(name)), DecoderNames::aux(name), d, s)?;
        Ok(Self {
            name: name.to_string(),
            loss,
            decoder,
        })
    }

    /// Latents (B, L, C_z) → predictions (B, N, target dim); for the caption decoder one
    /// row of vocabulary logits per image, (B, V).
    pub fn forward(&self, z: &Tensor, grid: (i64, i64)) -> Tensor {
        match self.loss {
            AuxLoss::Caption => self.decoder.forward_pooled(z, grid),
            _ => self.decoder.forward_tokens(z, grid),
        }
    }

    /// The loss of `pred` against `target` (B, N, D) over the tokens where `mask` (B, N)
    /// is true (`aux_loss_mask: True`).
    pub fn loss(&self, pred: &Tensor, target: &Tensor, mask: &Tensor) -> Tensor {
        aux_loss(self.loss, pred, target, mask)
    }
}

/// Spec §4.2: `Σ_masked (pred − target)² / #masked / D`; §4.3: `−cos(pred, target)` per
/// token (both L2-normalised, eps 1e-12 as `F.normalize`), averaged over masked tokens.
pub fn aux_loss(kind: AuxLoss, pred: &Tensor, target: &Tensor, mask: &Tensor) -> Tensor {
    let pred = pred.to_kind(tch::Kind::Float);
    let target = target.to_kind(tch::Kind::Float);

    match kind {
        AuxLoss::Mse => {
            let (m, count) = masked(mask);
            let d = *pred.size().last().unwrap_or(&1) as f64;
            ((&pred - &target).square() * &m).sum(tch::Kind::Float) / count / d
        }
        AuxLoss::Cosine => {
            let (m, count) = masked(mask);
            let unit = |t: &Tensor| t / t.norm_scalaropt_dim(2.0, [-1], true).clamp_min(1e-12);
            let cos = (unit(&pred) * unit(&target)).sum_dim_intlist(-1, true, tch::Kind::Float);
            -(cos * &m).sum(tch::Kind::Float) / count
        }
        AuxLoss::Caption => {
            let has = target
                .sum_dim_intlist(-1, false, tch::Kind::Float)
                .gt(0.0)
                .to_kind(tch::Kind::Float);
            let ce = -(pred.log_softmax(-1, tch::Kind::Float) * &target).sum_dim_intlist(
                -1,
                false,
                tch::Kind::Float,
            );
            (ce * &has).sum(tch::Kind::Float) / has.sum(tch::Kind::Float).clamp_min(1.0)
        }
    }
}

/// The (B, N, 1) float mask and its count.
fn masked(mask: &Tensor) -> (Tensor, Tensor) {
    let m = mask.to_kind(tch::Kind::Float).unsqueeze(-1);
    let count = m.sum(tch::Kind::Float);
    (m, count)
}

/// The caption decoder's target: per image the bag of its BPE ids, start/end tokens and
/// padding left out, normalised to sum 1 (all zeros without a caption), (B, vocab).
pub fn caption_target(ids: &[Vec<i32>], vocab: i64) -> Tensor {
    let (sot, eot) = ((vocab - 2) as i32, (vocab - 1) as i32);
    let mut t = vec![0f32; ids.len() * vocab as usize];
    for (row, caption) in t.chunks_mut(vocab as usize).zip(ids) {
        let words: Vec<i32> = caption
            .iter()
            .copied()
            .filter(|&i| i > 0 && i != sot && i != eot && (i as i64) < vocab)
            .collect();
        for &i in &words {
            row[i as usize] += 1.0 / words.len() as f32;
        }
    }
    Tensor::from_slice(&t).reshape([ids.len() as i64, vocab])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caption_target_and_loss() {
        // vocab 8: ids 6 = start, 7 = end.
        let t = caption_target(&[vec![6, 2, 3, 2, 7], vec![]], 8);
        let v: Vec<f32> = Vec::try_from(t.reshape([-1])).unwrap();
        assert_eq!(
            &v[..8],
            &[0.0, 0.0, 2.0 / 3.0, 1.0 / 3.0, 0.0, 0.0, 0.0, 0.0]
        );
        assert!(v[8..].iter().all(|&x| x == 0.0));
        // Uniform logits: cross-entropy ln 8 for the captioned image; the other is left out.
        let logits = Tensor::zeros([2, 8], (tch::Kind::Float, tch::Device::Cpu));
        let l = aux_loss(
            AuxLoss::Caption,
            &logits,
            &t,
            &Tensor::zeros([2, 1], (tch::Kind::Bool, tch::Device::Cpu)),
        );
        assert!((f64::try_from(l).unwrap() - 8f64.ln()).abs() < 1e-6);
    }
}
