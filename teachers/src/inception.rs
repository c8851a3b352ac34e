//! Inception-v3 as pytorch-fid defines it for FID (`pytorch_fid.inception.fid_inception_v3`,
//! the 2015-12-05 TensorFlow graph's weights): torchvision's Inception-v3 with the FID
//! blocks (average pools that do not count padding in `Mixed_5*`, `Mixed_6b..e`,
//! `Mixed_7b`; a max pool in `Mixed_7c`'s pool branch, as the TF graph has it) and the
//! 1008-way classifier. Every convolution is `BasicConv2d`: conv without bias, BatchNorm
//! (eps 1e-3, running statistics), ReLU.
//!
//! Input handling is pytorch-fid's: float x/255 in [0, 1], `interpolate` to 299×299
//! (bilinear, `align_corners=False`, no antialias), then 2x − 1. Outputs ([`Features`]): the
//! 2048-d pool features (FID, precision/recall), the logits `pool · fcᵀ` without the bias
//! (what the ADM evaluator's Inception Score reads: `softmax/logits/MatMul`), and the sFID
//! spatial features (`mixed_6/conv`: `Mixed_6d.branch1x1`'s first 7 channels, 17×17,
//! flattened in NHWC order as the ADM evaluator does).
//!
//! Weights: pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` converted by
//! `scripts/convert_inception.py` (the same tensors under the same names; the BatchNorm
//! step counts dropped).

use std::path::Path;

use maetok_nn::vars::{self, VarBuilder, Vars};
use maetok_nn::{Init, WeightError, Weights};
use tch::{Kind, Tensor};

const HINT: &str = "the FID Inception weights: pytorch-fid's \
                    pt_inception-2015-12-05-6726825d.pth converted by \
                    `python scripts/convert_inception.py IN.pth OUT.safetensors`";

/// The side the network sees (pytorch-fid resizes every input to it).
pub const INPUT_SIZE: i64 = 299;
/// Width of the pool features.
pub const POOL_DIM: i64 = 2048;
/// Classes of the TF graph's classifier.
pub const LOGITS_DIM: i64 = 1008;
/// The sFID features: 17 × 17 positions × 7 channels.
pub const SPATIAL_DIM: i64 = 17 * 17 * 7;

/// `BasicConv2d`: conv (no bias) → BatchNorm in eval mode (eps 1e-3) → ReLU.
struct Conv {
    weight: Tensor,
    bn_weight: Tensor,
    bn_bias: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    stride: [i64; 2],
    padding: [i64; 2],
}

/// (in, out, kernel, stride, padding) of one convolution.
type Shape = (i64, i64, [i64; 2], [i64; 2], [i64; 2]);

const fn k(n: i64) -> [i64; 2] {
    [n, n]
}

/// A 1×1 convolution.
const fn pointwise(i: i64, o: i64) -> Shape {
    (i, o, k(1), k(1), k(0))
}

impl Conv {
    fn new(vb: &VarBuilder, name: &str, s: Shape) -> Result<Self, WeightError> {
        let (i, o, kernel, stride, padding) = s;
        let c = vb.pp(name).pp("conv");
        let bn = vb.pp(name).pp("bn");
        Ok(Self {
            weight: c.param("weight", &[o, i, kernel[0], kernel[1]], Init::Zeros)?,
            bn_weight: bn.param("weight", &[o], Init::Ones)?,
            bn_bias: bn.param("bias", &[o], Init::Zeros)?,
            running_mean: bn.buffer("running_mean", &[o], Init::Zeros)?,
            running_var: bn.buffer("running_var", &[o], Init::Ones)?,
            stride,
            padding,
        })
    }

    /// BatchNorm in eval mode is an affine map per channel, folded into the convolution:
    /// `conv(x, w·s) + (β − μ·s)` with `s = γ / √(σ² + ε)`, one pass over the activations
    /// instead of two (pytorch-fid runs them apart; the outputs agree to float rounding).
    fn forward(&self, x: &Tensor) -> Tensor {
        let scale = (&self.running_var + 1e-3).rsqrt() * &self.bn_weight;
        let w = &self.weight * scale.view([-1, 1, 1, 1]);
        let b = &self.bn_bias - &self.running_mean * &scale;
        x.conv2d(&w, Some(&b), self.stride, self.padding, [1, 1], 1)
            .relu()
    }
}

/// The pool in front of a block's `branch_pool` (3×3, stride 1, padding 1).
#[derive(Clone, Copy)]
enum Pool {
    /// TF's average pool: padded zeros are not counted.
    Avg,
    /// `Mixed_7c` (FIDInceptionE_2): a max pool, as the TF graph has it.
    Max,
}

/// One branch of a mixed block; the block concatenates its branches over channels.
enum Branch {
    Convs(Vec<Conv>),
    /// The pool, then `branch_pool`.
    Pooled(Pool, Conv),
    /// The reduction blocks' 3×3 stride-2 max pool.
    MaxPool,
    /// Convolutions, then two convolutions of their output side by side (`Mixed_7*`).
    Split(Vec<Conv>, [Conv; 2]),
}

fn chain(convs: &[Conv], x: &Tensor) -> Tensor {
    convs.iter().fold(x.shallow_clone(), |h, c| c.forward(&h))
}

impl Branch {
    fn forward(&self, x: &Tensor) -> Tensor {
        match self {
            Self::Convs(c) => chain(c, x),
            Self::Pooled(Pool::Avg, c) => {
                c.forward(&x.avg_pool2d([3, 3], [1, 1], [1, 1], false, false, None))
            }
            Self::Pooled(Pool::Max, c) => {
                c.forward(&x.max_pool2d([3, 3], [1, 1], [1, 1], [1, 1], false))
            }
            Self::MaxPool => x.max_pool2d([3, 3], [2, 2], [0, 0], [1, 1], false),
            Self::Split(c, [a, b]) => {
                let h = chain(c, x);
                Tensor::cat(&[a.forward(&h), b.forward(&h)], 1)
            }
        }
    }
}

struct Mixed {
    branches: Vec<Branch>,
}

impl Mixed {
    fn forward(&self, x: &Tensor) -> Tensor {
        let outs: Vec<Tensor> = self.branches.iter().map(|b| b.forward(x)).collect();
        Tensor::cat(&outs, 1)
    }
}

/// Named convolutions of one branch, in order.
fn convs(vb: &VarBuilder, list: &[(&str, Shape)]) -> Result<Vec<Conv>, WeightError> {
    list.iter().map(|&(n, s)| Conv::new(vb, n, s)).collect()
}

/// `InceptionA` (`Mixed_5b..d`).
fn block_a(vb: &VarBuilder, i: i64, pool_features: i64) -> Result<Mixed, WeightError> {
    Ok(Mixed {
        branches: vec![
            Branch::Convs(convs(vb, &[("branch1x1", pointwise(i, 64))])?),
            Branch::Convs(convs(
                vb,
                &[
                    ("branch5x5_1", pointwise(i, 48)),
                    ("branch5x5_2", (48, 64, k(5), k(1), k(2))),
                ],
            )?),
            Branch::Convs(convs(
                vb,
                &[
                    ("branch3x3dbl_1", pointwise(i, 64)),
                    ("branch3x3dbl_2", (64, 96, k(3), k(1), k(1))),
                    ("branch3x3dbl_3", (96, 96, k(3), k(1), k(1))),
                ],
            )?),
            Branch::Pooled(
                Pool::Avg,
                Conv::new(vb, "branch_pool", pointwise(i, pool_features))?,
            ),
        ],
    })
}

/// `InceptionB` (`Mixed_6a`): 35×35 → 17×17.
fn block_b(vb: &VarBuilder, i: i64) -> Result<Mixed, WeightError> {
    Ok(Mixed {
        branches: vec![
            Branch::Convs(convs(vb, &[("branch3x3", (i, 384, k(3), k(2), k(0)))])?),
            Branch::Convs(convs(
                vb,
                &[
                    ("branch3x3dbl_1", pointwise(i, 64)),
                    ("branch3x3dbl_2", (64, 96, k(3), k(1), k(1))),
                    ("branch3x3dbl_3", (96, 96, k(3), k(2), k(0))),
                ],
            )?),
            Branch::MaxPool,
        ],
    })
}

/// 1×7 and 7×1 convolutions of `c` → `o` channels.
const fn row(i: i64, o: i64) -> Shape {
    (i, o, [1, 7], [1, 1], [0, 3])
}
const fn col(i: i64, o: i64) -> Shape {
    (i, o, [7, 1], [1, 1], [3, 0])
}

/// `InceptionC` (`Mixed_6b..e`) with `c7` channels in its factorised 7×7 branches.
fn block_c(vb: &VarBuilder, c7: i64) -> Result<Mixed, WeightError> {
    Ok(Mixed {
        branches: vec![
            Branch::Convs(convs(vb, &[("branch1x1", pointwise(768, 192))])?),
            Branch::Convs(convs(
                vb,
                &[
                    ("branch7x7_1", pointwise(768, c7)),
                    ("branch7x7_2", row(c7, c7)),
                    ("branch7x7_3", col(c7, 192)),
                ],
            )?),
            Branch::Convs(convs(
                vb,
                &[
                    ("branch7x7dbl_1", pointwise(768, c7)),
                    ("branch7x7dbl_2", col(c7, c7)),
                    ("branch7x7dbl_3", row(c7, c7)),
                    ("branch7x7dbl_4", col(c7, c7)),
                    ("branch7x7dbl_5", row(c7, 192)),
                ],
            )?),
            Branch::Pooled(
                Pool::Avg,
                Conv::new(vb, "branch_pool", pointwise(768, 192))?,
            ),
        ],
    })
}

/// `InceptionD` (`Mixed_7a`): 17×17 → 8×8.
fn block_d(vb: &VarBuilder) -> Result<Mixed, WeightError> {
    Ok(Mixed {
        branches: vec![
            Branch::Convs(convs(
                vb,
                &[
                    ("branch3x3_1", pointwise(768, 192)),
                    ("branch3x3_2", (192, 320, k(3), k(2), k(0))),
                ],
            )?),
            Branch::Convs(convs(
                vb,
                &[
                    ("branch7x7x3_1", pointwise(768, 192)),
                    ("branch7x7x3_2", row(192, 192)),
                    ("branch7x7x3_3", col(192, 192)),
                    ("branch7x7x3_4", (192, 192, k(3), k(2), k(0))),
                ],
            )?),
            Branch::MaxPool,
        ],
    })
}

/// `InceptionE` (`Mixed_7b`, `Mixed_7c`), with the pool its FID variant uses.
fn block_e(vb: &VarBuilder, i: i64, pool: Pool) -> Result<Mixed, WeightError> {
    let pair = |a: &str, b: &str| -> Result<[Conv; 2], WeightError> {
        Ok([
            Conv::new(vb, a, (384, 384, [1, 3], k(1), [0, 1]))?,
            Conv::new(vb, b, (384, 384, [3, 1], k(1), [1, 0]))?,
        ])
    };
    Ok(Mixed {
        branches: vec![
            Branch::Convs(convs(vb, &[("branch1x1", pointwise(i, 320))])?),
            Branch::Split(
                convs(vb, &[("branch3x3_1", pointwise(i, 384))])?,
                pair("branch3x3_2a", "branch3x3_2b")?,
            ),
            Branch::Split(
                convs(
                    vb,
                    &[
                        ("branch3x3dbl_1", pointwise(i, 448)),
                        ("branch3x3dbl_2", (448, 384, k(3), k(1), k(1))),
                    ],
                )?,
                pair("branch3x3dbl_3a", "branch3x3dbl_3b")?,
            ),
            Branch::Pooled(pool, Conv::new(vb, "branch_pool", pointwise(i, 192))?),
        ],
    })
}

/// What one batch of images gives.
pub struct Features {
    /// (N, 2048) f32.
    pub pool: Tensor,
    /// (N, 1008) f32: `pool · fc.weightᵀ`, no bias (the ADM evaluator's Inception Score).
    pub logits: Tensor,
    /// (N, 2023) f32, NHWC order (the ADM evaluator's sFID features).
    pub spatial: Tensor,
}

/// The FID Inception network; see the module docs.
pub struct Inception {
    vars: Vars,
    stem_a: Vec<Conv>,
    stem_b: Vec<Conv>,
    /// `Mixed_5b` … `Mixed_7c`, in order.
    mixed: Vec<(&'static str, Mixed)>,
    fc_weight: Tensor,
    fc_bias: Tensor,
}

type Parts = (
    Vec<Conv>,
    Vec<Conv>,
    Vec<(&'static str, Mixed)>,
    Tensor,
    Tensor,
);

impl Inception {
    /// The one definition of its tensors, under pytorch-fid's names.
    fn build(vb: &VarBuilder) -> Result<Parts, WeightError> {
        let stem_a = convs(
            vb,
            &[
                ("Conv2d_1a_3x3", (3, 32, k(3), k(2), k(0))),
                ("Conv2d_2a_3x3", (32, 32, k(3), k(1), k(0))),
                ("Conv2d_2b_3x3", (32, 64, k(3), k(1), k(1))),
            ],
        )?;
        let stem_b = convs(
            vb,
            &[
                ("Conv2d_3b_1x1", pointwise(64, 80)),
                ("Conv2d_4a_3x3", (80, 192, k(3), k(1), k(0))),
            ],
        )?;
        let mixed = vec![
            ("Mixed_5b", block_a(&vb.pp("Mixed_5b"), 192, 32)?),
            ("Mixed_5c", block_a(&vb.pp("Mixed_5c"), 256, 64)?),
            ("Mixed_5d", block_a(&vb.pp("Mixed_5d"), 288, 64)?),
            ("Mixed_6a", block_b(&vb.pp("Mixed_6a"), 288)?),
            ("Mixed_6b", block_c(&vb.pp("Mixed_6b"), 128)?),
            ("Mixed_6c", block_c(&vb.pp("Mixed_6c"), 160)?),
            ("Mixed_6d", block_c(&vb.pp("Mixed_6d"), 160)?),
            ("Mixed_6e", block_c(&vb.pp("Mixed_6e"), 192)?),
            ("Mixed_7a", block_d(&vb.pp("Mixed_7a"))?),
            ("Mixed_7b", block_e(&vb.pp("Mixed_7b"), 1280, Pool::Avg)?),
            ("Mixed_7c", block_e(&vb.pp("Mixed_7c"), 2048, Pool::Max)?),
        ];
        let fc = vb.pp("fc");
        let fc_weight = fc.param("weight", &[LOGITS_DIM, POOL_DIM], Init::Zeros)?;
        let fc_bias = fc.param("bias", &[LOGITS_DIM], Init::Zeros)?;
        Ok((stem_a, stem_b, mixed, fc_weight, fc_bias))
    }

    /// Every (name, shape) of the state dict, sorted by name (what a seeded fixture draws
    /// its weights in).
    pub fn layout() -> Vec<(String, Vec<i64>)> {
        let (_, vars) = vars::init(|vb| Self::build(&vb)).expect("a fresh build cannot fail");
        let mut v: Vec<(String, Vec<i64>)> = vars
            .named()
            .into_iter()
            .map(|(k, t)| (k, t.size()))
            .collect();
        v.sort();
        v
    }

    /// From a converted weights file (see the module docs).
    pub fn load(path: &Path) -> Result<Self, WeightError> {
        Self::from_weights(Weights::load(path, HINT)?)
    }

    /// From tensors under pytorch-fid's names; BatchNorm step counts are ignored, any other
    /// extra key is an error.
    pub fn from_weights(w: Weights) -> Result<Self, WeightError> {
        let path = w.path().to_path_buf();
        let (p, vars, left) = vars::load(w, |vb| Self::build(&vb))?;
        let extra: Vec<String> = left
            .into_iter()
            .filter(|k| !k.ends_with("num_batches_tracked"))
            .collect();
        if !extra.is_empty() {
            return Err(WeightError::Layout {
                path,
                message: format!("keys the FID Inception does not have: {extra:?}"),
                hint: HINT.into(),
            });
        }
        let (stem_a, stem_b, mixed, fc_weight, fc_bias) = p;
        Ok(Self {
            vars,
            stem_a,
            stem_b,
            mixed,
            fc_weight,
            fc_bias,
        })
    }

    pub fn vars(&self) -> &Vars {
        &self.vars
    }

    pub fn to(&mut self, device: tch::Device) {
        self.vars.to(device, Kind::Float);
    }

    pub fn device(&self) -> tch::Device {
        self.fc_weight.device()
    }

    /// pytorch-fid's input handling: images (N, 3, H, W) in [0, 1] → (N, 3, 299, 299) in
    /// [−1, 1].
    pub fn prepare(x: &Tensor) -> Tensor {
        let x = x.to_kind(Kind::Float);
        let s = x.size();
        let x = if s[2] == INPUT_SIZE && s[3] == INPUT_SIZE {
            x
        } else {
            x.upsample_bilinear2d([INPUT_SIZE, INPUT_SIZE], false, None, None)
        };
        x * 2.0 - 1.0
    }

    /// uint8 images (N, H, W, 3) (the ADM `.npz` layout) → the network's input, on `device`.
    pub fn prepare_u8_nhwc(images: &Tensor, device: tch::Device) -> Tensor {
        let x = images
            .to_device(device)
            .permute([0, 3, 1, 2])
            .to_kind(Kind::Float)
            / 255.0;
        Self::prepare(&x)
    }

    /// The features of a prepared batch ([`Inception::prepare`]).
    pub fn forward(&self, x: &Tensor) -> Features {
        let pool = |h: Tensor| h.max_pool2d([3, 3], [2, 2], [0, 0], [1, 1], false);
        let h = pool(chain(&self.stem_a, x));
        let mut h = pool(chain(&self.stem_b, &h));
        let mut spatial = None;
        for (name, m) in &self.mixed {
            h = m.forward(&h);
            if *name == "Mixed_6d" {
                // `mixed_6/conv`: branch1x1 comes first in the concatenation.
                let n = h.size()[0];
                spatial = Some(h.narrow(1, 0, 7).permute([0, 2, 3, 1]).reshape([n, -1]));
            }
        }
        let pool = h.mean_dim(&[2i64, 3][..], false, Kind::Float);
        let logits = pool.matmul(&self.fc_weight.transpose(0, 1));
        Features {
            pool,
            logits,
            spatial: spatial.expect("Mixed_6d runs"),
        }
    }

    /// torchvision's classifier output `pool · fcᵀ + b` (what pytorch-fid's network would
    /// return with its `fc`), for checks.
    pub fn logits_with_bias(&self, f: &Features) -> Tensor {
        &f.logits + &self.fc_bias
    }
}
