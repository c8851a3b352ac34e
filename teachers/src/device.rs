//! `cpu`, `cuda`, `cuda:N` → a libtorch device, checked against what this machine has, and
//! the compute dtype names used in configs.

use tch::{Device, Kind};

pub fn parse_device(s: &str) -> Result<Device, String> {
    let d = match s {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        other => other
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| format!("unknown device `{s}` (cpu, cuda, cuda:N)"))?,
    };
    let count = tch::Cuda::device_count() as usize;
    if d >= count {
        return Err(format!(
            "device `{s}` is not available: this machine has {count} CUDA device(s) visible to libtorch"
        ));
    }
    Ok(Device::Cuda(d))
}

/// `f32` / `bf16`; `None` picks bf16 on GPU and f32 on CPU.
pub fn parse_kind(s: Option<&str>, device: Device) -> Result<Kind, String> {
    match s {
        None => Ok(if device.is_cuda() {
            Kind::BFloat16
        } else {
            Kind::Float
        }),
        Some("f32" | "fp32" | "float32") => Ok(Kind::Float),
        Some("bf16" | "bfloat16") => Ok(Kind::BFloat16),
        Some(other) => Err(format!("unknown dtype `{other}` (f32, bf16)")),
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
            .contains("cpu, cuda, cuda:N"));
        if tch::Cuda::device_count() == 0 {
            assert!(parse_device("cuda:0")
                .unwrap_err()
                .contains("0 CUDA device"));
        }
        assert_eq!(parse_kind(None, Device::Cpu).unwrap(), Kind::Float);
        assert_eq!(parse_kind(None, Device::Cuda(0)).unwrap(), Kind::BFloat16);
        assert!(parse_kind(Some("f8"), Device::Cpu).is_err());
    }
}
