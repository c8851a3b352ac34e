//! LPIPS-VGG16 (spec §5.1; Zhang et al. 2018, the "v0.1 vgg" heads the reference loads as
//! taming's `vgg.pth`): inputs in [-1, 1] shifted by (-.030, -.088, -.188) and scaled by
//! (.458, .448, .450), VGG16 `features` up to relu1_2, relu2_2, relu3_3, relu4_3, relu5_3;
//! each feature map unit-normalised over channels (eps 1e-10), squared difference, a 1×1
//! non-negative linear head (behind Dropout(0.5), which the reference leaves active while
//! training), spatial mean, summed over the five stages → (B, 1, 1, 1).
//!
//! Weights: the VGG16 `features.*` tensors (torchvision's `vgg16-397923af.pth` through
//! `scripts/convert_lpips.py`, or timm's `vgg16.tv_in1k` `model.safetensors`, same names)
//! and the heads `lin{0..4}.model.1.weight` (the `lpips` wheel's `weights/v0.1/vgg.pth` or
//! taming's `vgg.pth`, converted by the same script). Channel widths come from the files.

use std::path::Path;

use maetok_teachers::weights::{WeightError, Weights};
use tch::Tensor;

/// `features` indices of the convolutions, grouped by the stage they end (each stage is
/// followed by a 2×2 max-pool, except that the last pool is never reached).
const STAGES: [&[usize]; 5] = [
    &[0, 2],
    &[5, 7],
    &[10, 12, 14],
    &[17, 19, 21],
    &[24, 26, 28],
];

const VGG_HINT: &str = "VGG16 `features.*` weights: timm `vgg16.tv_in1k` model.safetensors, or \
                        torchvision vgg16-397923af.pth converted by scripts/convert_lpips.py";
const LIN_HINT: &str = "LPIPS heads `lin0..4.model.1.weight`: the lpips wheel's \
                        weights/v0.1/vgg.pth converted by scripts/convert_lpips.py";

pub struct Lpips {
    /// Per stage, its (weight, bias) convolutions.
    stages: Vec<Vec<(Tensor, Tensor)>>,
    /// Per stage, the (1, C, 1, 1) head.
    lins: Vec<Tensor>,
    shift: Tensor,
    scale: Tensor,
}

impl Lpips {
    pub fn load(vgg: &Path, heads: &Path) -> Result<Self, WeightError> {
        let mut w = Weights::load(vgg, VGG_HINT)?;
        let mut h = Weights::load(heads, LIN_HINT)?;
        let mut stages = Vec::new();
        let mut c_in = 3;
        for convs in STAGES {
            let mut s = Vec::new();
            for &i in convs {
                let weight = w.take_any(&format!("features.{i}.weight"))?;
                let c = weight.size()[0];
                let weight =
                    w.take_shaped(weight, &format!("features.{i}.weight"), &[c, c_in, 3, 3])?;
                let bias = w.take(&format!("features.{i}.bias"), &[c])?;
                s.push((weight, bias));
                c_in = c;
            }
            stages.push(s);
        }
        let lins = stages
            .iter()
            .enumerate()
            .map(|(k, s)| {
                let c = s.last().map_or(0, |(w, _)| w.size()[0]);
                h.take(&format!("lin{k}.model.1.weight"), &[1, c, 1, 1])
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            stages,
            lins,
            shift: Tensor::from_slice(&[-0.030f32, -0.088, -0.188]).reshape([1, 3, 1, 1]),
            scale: Tensor::from_slice(&[0.458f32, 0.448, 0.450]).reshape([1, 3, 1, 1]),
        })
    }

    pub fn to(&self, device: tch::Device) -> Self {
        let mv = |t: &Tensor| t.to_device(device);
        Self {
            stages: self
                .stages
                .iter()
                .map(|s| s.iter().map(|(w, b)| (mv(w), mv(b))).collect())
                .collect(),
            lins: self.lins.iter().map(mv).collect(),
            shift: mv(&self.shift),
            scale: mv(&self.scale),
        }
    }

    /// The five relu outputs for `x` in [-1, 1].
    fn features(&self, x: &Tensor) -> Vec<Tensor> {
        let mut h = (x - &self.shift) / &self.scale;
        let mut out = Vec::with_capacity(5);
        for (i, convs) in self.stages.iter().enumerate() {
            if i > 0 {
                h = h.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
            }
            for (w, b) in convs {
                h = h.conv2d(w, Some(b), [1, 1], [1, 1], [1, 1], 1).relu();
            }
            out.push(h.shallow_clone());
        }
        out
    }

    /// LPIPS of each pair, (B, 1, 1, 1). `dropout`: the heads' Dropout(0.5) is active (the
    /// reference's training mode; its masks come from libtorch's generator).
    pub fn forward(&self, a: &Tensor, b: &Tensor, dropout: bool) -> Tensor {
        let n = a.size()[0];
        // One VGG pass over both images (batch-independent ops, same result as two passes).
        let f = self.features(&Tensor::cat(&[a, b], 0));
        let unit = |t: &Tensor| t / (t.square().sum_dim_intlist(1, true, t.kind()).sqrt() + 1e-10);
        let mut total: Option<Tensor> = None;
        for (k, fk) in f.iter().enumerate() {
            let (fa, fb) = (unit(&fk.narrow(0, 0, n)), unit(&fk.narrow(0, n, n)));
            let d = (fa - fb).square().dropout(0.5, dropout);
            let v = d
                .conv2d(&self.lins[k], None::<&Tensor>, [1, 1], [0, 0], [1, 1], 1)
                .mean_dim(&[2i64, 3][..], true, d.kind());
            total = Some(match total {
                Some(t) => t + v,
                None => v,
            });
        }
        total.expect("five stages")
    }
}
