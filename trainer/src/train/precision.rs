//! Mixed precision (spec §5.3: bf16 autocast on GPU, fp32 on CPU): which autocast dtype a
//! run uses. The autocast bindings themselves are `maetok_nn::autocast`.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind};

/// Numeric precision of the forward pass and the losses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// bf16 autocast on CUDA, fp32 on CPU (the paper's setting).
    #[default]
    Auto,
    /// fp32 everywhere.
    Fp32,
    /// bf16 autocast on the training device, CPU included (CPU autocast is real, if slow on
    /// CPUs without bf16 units; the tests use it to run the autocast path).
    Bf16,
}

impl Precision {
    /// The autocast dtype on `device`, or `None` for plain fp32.
    pub fn autocast_kind(self, device: Device) -> Option<Kind> {
        match (self, device) {
            (Precision::Fp32, _) | (Precision::Auto, Device::Cpu) => None,
            (Precision::Auto, _) | (Precision::Bf16, _) => Some(Kind::BFloat16),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_is_bf16_on_cuda_and_fp32_on_cpu() {
        assert_eq!(Precision::Auto.autocast_kind(Device::Cpu), None);
        assert_eq!(
            Precision::Auto.autocast_kind(Device::Cuda(0)),
            Some(Kind::BFloat16)
        );
        assert_eq!(Precision::Fp32.autocast_kind(Device::Cuda(0)), None);
        assert_eq!(
            Precision::Bf16.autocast_kind(Device::Cpu),
            Some(Kind::BFloat16)
        );
    }
}
