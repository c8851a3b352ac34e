//! How a fresh tensor is drawn (spec §2.5). Every draw is made on the CPU in fp32 from
//! libtorch's global generator, in the order the model's constructor asks for tensors, so
//! `tch::manual_seed(s)` followed by a build gives the same weights on every machine.

use tch::{Device, Kind, Tensor};

const OPTS: (Kind, Device) = (Kind::Float, Device::Cpu);

/// A fresh tensor's distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    Zeros,
    Ones,
    Const(f64),
    /// N(0, std²), e.g. timm's `cls_token` (1e-6) or MAETok's latent tokens (0.02).
    Randn(f64),
    /// timm's `trunc_normal_(std)`: N(0, std²) cut at ±2 (absolute, so far out for std 0.02).
    TruncNormal(f64),
    /// U(−b, b): PyTorch's default `nn.Linear` / `nn.Conv*` init has b = 1/√fan_in for the
    /// weight and the bias.
    Uniform(f64),
}

impl Init {
    /// PyTorch's default init of a layer with `fan_in` inputs per output.
    pub fn torch_default(fan_in: i64) -> Self {
        Self::Uniform(1.0 / (fan_in as f64).sqrt())
    }

    pub fn draw(self, shape: &[i64]) -> Tensor {
        match self {
            Self::Zeros => Tensor::zeros(shape, OPTS),
            Self::Ones => Tensor::ones(shape, OPTS),
            Self::Const(v) => Tensor::full(shape, v, OPTS),
            Self::Randn(std) => Tensor::randn(shape, OPTS) * std,
            Self::TruncNormal(std) => (Tensor::randn(shape, OPTS) * std).clamp(-2.0, 2.0),
            Self::Uniform(b) => Tensor::rand(shape, OPTS) * (2.0 * b) - b,
        }
    }
}

/// How a `Linear` is initialised: timm's ViT init (trunc-normal 0.02 weight, zero bias),
/// PyTorch's default (both U(±1/√in)), DiT/SiT's `_basic_init` (Xavier-uniform weight,
/// zero bias), normal with a given std and zero bias (SiT's time MLP), or zeros (adaLN-Zero).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LinearInit {
    Timm,
    TorchDefault,
    Xavier,
    Normal(f64),
    Zeros,
}

impl LinearInit {
    /// The (weight, bias) inits of a layer with `inp` inputs and `out` outputs.
    pub fn parts(self, inp: i64, out: i64) -> (Init, Init) {
        match self {
            Self::Timm => (Init::TruncNormal(0.02), Init::Zeros),
            Self::TorchDefault => (Init::torch_default(inp), Init::torch_default(inp)),
            // torch.nn.init.xavier_uniform_: U(±√(6 / (fan_in + fan_out))).
            Self::Xavier => (
                Init::Uniform((6.0 / (inp + out) as f64).sqrt()),
                Init::Zeros,
            ),
            Self::Normal(std) => (Init::Randn(std), Init::Zeros),
            Self::Zeros => (Init::Zeros, Init::Zeros),
        }
    }
}
