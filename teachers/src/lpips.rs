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

use maetok_nn::rng::SplitMix;
use maetok_nn::vars::{self, VarBuilder, Vars};
use maetok_nn::{Init, WeightError, Weights};
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
    vars: Vars,
    /// Per stage, its (weight, bias) convolutions.
    stages: Vec<Vec<(Tensor, Tensor)>>,
    /// Per stage, the (1, C, 1, 1) head.
    lins: Vec<Tensor>,
    shift: Tensor,
    scale: Tensor,
}

impl Lpips {
    pub fn load(vgg: &Path, heads: &Path) -> Result<Self, WeightError> {
        let w = Weights::load(vgg, VGG_HINT)?;
        // The channel widths, from the files.
        let widths = STAGES
            .iter()
            .map(|convs| {
                convs
                    .iter()
                    .map(|i| {
                        let key = format!("features.{i}.weight");
                        w.shape(&key)
                            .map(|s| s[0])
                            .ok_or_else(|| w.missing(&key, None))
                    })
                    .collect::<Result<Vec<i64>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ((stages, shift, scale), mut all, _) = vars::load(w, |vb| {
            let stages = Self::vgg(&vb, &widths)?;
            let rgb = |v: [f32; 3]| Tensor::from_slice(&v).reshape([1, 3, 1, 1]);
            let shift = vb.derived("shift", rgb([-0.030, -0.088, -0.188]));
            let scale = vb.derived("scale", rgb([0.458, 0.448, 0.450]));
            Ok::<_, WeightError>((stages, shift, scale))
        })?;
        let h = Weights::load(heads, LIN_HINT)?;
        let (lins, lin_vars, _) = vars::load(h, |vb| {
            widths
                .iter()
                .enumerate()
                .map(|(k, s)| {
                    let c = *s.last().unwrap_or(&0);
                    vb.pp(format!("lin{k}.model.1"))
                        .param("weight", &[1, c, 1, 1], Init::Zeros)
                })
                .collect::<Result<Vec<_>, _>>()
        })?;
        all.extend(lin_vars);
        Ok(Self {
            vars: all,
            stages,
            lins,
            shift,
            scale,
        })
    }

    /// VGG16 `features.{i}` convolutions (3×3) of the given widths.
    fn vgg(
        vb: &VarBuilder,
        widths: &[Vec<i64>],
    ) -> Result<Vec<Vec<(Tensor, Tensor)>>, WeightError> {
        let mut c_in = 3;
        let mut stages = Vec::new();
        for (convs, ws) in STAGES.iter().zip(widths) {
            let mut s = Vec::new();
            for (&i, &c) in convs.iter().zip(ws) {
                let f = vb.pp(format!("features.{i}"));
                s.push((
                    f.param("weight", &[c, c_in, 3, 3], Init::Zeros)?,
                    f.param("bias", &[c], Init::Zeros)?,
                ));
                c_in = c;
            }
            stages.push(s);
        }
        Ok(stages)
    }

    /// Every tensor, under the name it was read by.
    pub fn vars(&self) -> &Vars {
        &self.vars
    }

    /// Move every tensor to `device`, in place.
    pub fn to(&mut self, device: tch::Device) {
        self.vars.to(device, tch::Kind::Float);
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
    /// reference's training mode), with one key per pair: pair i's masks are drawn from
    /// libtorch's generator seeded from (key i, stage), so they depend on that key alone,
    /// not on the pairs beside it in the batch (training keys them by global sample index).
    /// `None`: eval mode.
    pub fn forward(&self, a: &Tensor, b: &Tensor, dropout: Option<&[u64]>) -> Tensor {
        let n = a.size()[0];
        // One VGG pass over both images (batch-independent ops, same result as two passes).
        let f = self.features(&Tensor::cat(&[a, b], 0));
        let unit = |t: &Tensor| t / (t.square().sum_dim_intlist(1, true, t.kind()).sqrt() + 1e-10);
        let mut total: Option<Tensor> = None;
        for (k, fk) in f.iter().enumerate() {
            let (fa, fb) = (unit(&fk.narrow(0, 0, n)), unit(&fk.narrow(0, n, n)));
            let d = (fa - fb).square();
            let d = match dropout {
                Some(keys) => &d * keyed_keep_mask(&d, keys, k as u64) * 2.0,
                None => d,
            };
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

/// Dropout(0.5)'s keep mask for `d` (B, …): row i from libtorch's generator seeded from
/// (`keys[i]`, `stage`).
fn keyed_keep_mask(d: &Tensor, keys: &[u64], stage: u64) -> Tensor {
    assert_eq!(keys.len() as i64, d.size()[0], "one dropout key per pair");
    let rows: Vec<Tensor> = keys
        .iter()
        .map(|&key| {
            let seed = SplitMix::new(key ^ stage.wrapping_mul(0x9E37_79B9_7F4A_7C15)).next_u64();
            tch::manual_seed((seed >> 1) as i64);
            d.get(0).empty_like().bernoulli_float_(0.5)
        })
        .collect();
    Tensor::stack(&rows, 0)
}
