//! `cpu`, `cuda`, `cuda:N` → a libtorch device, checked against what this machine has, and
//! the compute dtype names used in configs.

use tch::{Device, Kind};

/// A device or dtype name that cannot be used here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    #[error("unknown device `{0}` (cpu, cuda, cuda:N)")]
    Unknown(String),
    #[error(
        "device `{name}` is not available: this machine has {count} CUDA device(s) visible to libtorch"
    )]
    Unavailable { name: String, count: usize },
    #[error("unknown dtype `{0}` (f32, bf16)")]
    UnknownDtype(String),
}

/// The device `s` names, without checking that this machine has it (a config written on
/// a machine without GPUs names the devices of the one it runs on).
pub fn device_name(s: &str) -> Result<Device, DeviceError> {
    match s {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(Device::Cuda(0)),
        other => other
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok())
            .map(Device::Cuda)
            .ok_or_else(|| DeviceError::Unknown(s.to_string())),
    }
}

/// The device `s` names, checked against what this machine has.
pub fn parse_device(s: &str) -> Result<Device, DeviceError> {
    let Device::Cuda(d) = device_name(s)? else {
        return Ok(Device::Cpu);
    };
    let count = tch::Cuda::device_count() as usize;
    if d >= count {
        return Err(DeviceError::Unavailable {
            name: s.to_string(),
            count,
        });
    }
    Ok(Device::Cuda(d))
}

/// `f32` / `bf16`; `None` picks bf16 on GPU and f32 on CPU.
pub fn parse_kind(s: Option<&str>, device: Device) -> Result<Kind, DeviceError> {
    match s {
        None => Ok(if device.is_cuda() {
            Kind::BFloat16
        } else {
            Kind::Float
        }),
        Some("f32" | "fp32" | "float32") => Ok(Kind::Float),
        Some("bf16" | "bfloat16") => Ok(Kind::BFloat16),
        Some(other) => Err(DeviceError::UnknownDtype(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks() {
        assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
        assert!(parse_device("gpu")
            .unwrap_err()
            .to_string()
            .contains("cpu, cuda, cuda:N"));
        if tch::Cuda::device_count() == 0 {
            assert!(parse_device("cuda:0")
                .unwrap_err()
                .to_string()
                .contains("0 CUDA device"));
        }
        assert_eq!(parse_kind(None, Device::Cpu).unwrap(), Kind::Float);
        assert_eq!(parse_kind(None, Device::Cuda(0)).unwrap(), Kind::BFloat16);
        assert!(parse_kind(Some("f8"), Device::Cpu).is_err());
    }
}
