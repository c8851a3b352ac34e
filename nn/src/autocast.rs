//! libtorch's autocast with a chosen dtype (spec §5.3: bf16 autocast on GPU).
//!
//! tch 0.24 only exposes CUDA autocast in its default dtype (fp16) and no dtype setter, so
//! this module calls libtorch's own `at::autocast` functions. They are C++ functions whose
//! arguments are one-byte enums (`c10::DeviceType`, `c10::ScalarType`) and a `bool`; under
//! the Itanium C++ ABI (Linux, macOS) such a function is called exactly like a C function
//! taking those integers, so we bind them by their mangled names. libtorch_cpu exports them
//! and tch already links it. `tests` below check that each binding round-trips and that ops
//! really run in the chosen dtype.

use tch::{Device, Kind};

// c10::DeviceType and c10::ScalarType values (c10/core/DeviceType.h, ScalarType.h).
const DEVICE_CPU: i8 = 0;
const DEVICE_CUDA: i8 = 1;

fn scalar_type(kind: Kind) -> i8 {
    match kind {
        Kind::Half => 5,
        Kind::Float => 6,
        Kind::BFloat16 => 15,
        other => panic!("autocast dtype must be Half, Float or BFloat16, not {other:?}"),
    }
}

fn device_type(device: Device) -> i8 {
    match device {
        Device::Cpu => DEVICE_CPU,
        Device::Cuda(_) => DEVICE_CUDA,
        other => panic!("autocast on {other:?} is not supported"),
    }
}

extern "C" {
    #[link_name = "_ZN2at8autocast20set_autocast_enabledEN3c1010DeviceTypeEb"]
    fn at_set_autocast_enabled(device: i8, enabled: bool);
    #[link_name = "_ZN2at8autocast19is_autocast_enabledEN3c1010DeviceTypeE"]
    fn at_is_autocast_enabled(device: i8) -> bool;
    #[link_name = "_ZN2at8autocast18set_autocast_dtypeEN3c1010DeviceTypeENS1_10ScalarTypeE"]
    fn at_set_autocast_dtype(device: i8, dtype: i8);
    #[link_name = "_ZN2at8autocast18get_autocast_dtypeEN3c1010DeviceTypeE"]
    fn at_get_autocast_dtype(device: i8) -> i8;
    #[link_name = "_ZN2at8autocast17increment_nestingEv"]
    fn at_increment_nesting() -> i32;
    #[link_name = "_ZN2at8autocast17decrement_nestingEv"]
    fn at_decrement_nesting() -> i32;
    #[link_name = "_ZN2at8autocast11clear_cacheEv"]
    fn at_clear_cache();
}

/// Whether autocast is on for `device` on this thread.
pub fn is_enabled(device: Device) -> bool {
    // SAFETY: a libtorch function taking a one-byte enum (see the module comment).
    unsafe { at_is_autocast_enabled(device_type(device)) }
}

/// Runs `f` with autocast on `device` in `kind` (`None`: runs `f` as is), as PyTorch's
/// `torch.autocast(device_type, dtype)` context manager does: the previous state is put
/// back afterwards and the cast cache is cleared when the outermost region ends. Call
/// `backward` outside: autograd replays each op in the dtype its forward ran in.
pub fn autocast<T>(device: Device, kind: Option<Kind>, f: impl FnOnce() -> T) -> T {
    let Some(kind) = kind else { return f() };
    let dev = device_type(device);
    let dtype = scalar_type(kind);
    // SAFETY: libtorch functions taking one-byte enums and a bool (see the module comment);
    // autocast state is thread-local, so nothing else observes the change.
    let (prev_on, prev_dtype) = unsafe {
        let prev = (at_is_autocast_enabled(dev), at_get_autocast_dtype(dev));
        at_set_autocast_dtype(dev, dtype);
        at_set_autocast_enabled(dev, true);
        at_increment_nesting();
        prev
    };
    // Restore even when `f` panics, so a caught panic cannot leave autocast on.
    struct Restore(i8, bool, i8);
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: as above.
            unsafe {
                if at_decrement_nesting() == 0 {
                    at_clear_cache();
                }
                at_set_autocast_enabled(self.0, self.1);
                at_set_autocast_dtype(self.0, self.2);
            }
        }
    }
    let _restore = Restore(dev, prev_on, prev_dtype);
    f()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Tensor;

    #[test]
    fn bindings_round_trip() {
        // SAFETY: see the module comment.
        unsafe {
            let before = at_get_autocast_dtype(DEVICE_CPU);
            // CPU autocast defaults to bf16, CUDA's to fp16.
            assert_eq!(before, 15);
            assert_eq!(at_get_autocast_dtype(DEVICE_CUDA), 5);
            at_set_autocast_dtype(DEVICE_CPU, 5);
            assert_eq!(at_get_autocast_dtype(DEVICE_CPU), 5);
            at_set_autocast_dtype(DEVICE_CPU, before);
        }
        assert!(!is_enabled(Device::Cpu));
    }

    #[test]
    fn ops_run_in_the_autocast_dtype_and_the_state_comes_back() {
        let a = Tensor::randn([4, 8], (Kind::Float, Device::Cpu));
        let b = Tensor::randn([8, 3], (Kind::Float, Device::Cpu));
        let (mm, sum, inner) = autocast(Device::Cpu, Some(Kind::BFloat16), || {
            assert!(is_enabled(Device::Cpu));
            // Nested regions keep autocast on and restore the outer dtype.
            let inner = autocast(Device::Cpu, Some(Kind::Half), || a.matmul(&b).kind());
            (a.matmul(&b), (&a + 1.0).kind(), inner)
        });
        assert_eq!(
            mm.kind(),
            Kind::BFloat16,
            "matmul is on autocast's lower-precision list"
        );
        assert_eq!(inner, Kind::Half);
        assert_eq!(sum, Kind::Float, "elementwise ops keep their input dtype");
        assert!(!is_enabled(Device::Cpu));
        assert_eq!(a.matmul(&b).kind(), Kind::Float);
        // SAFETY: see the module comment.
        assert_eq!(unsafe { at_get_autocast_dtype(DEVICE_CPU) }, 15);
        // bf16 keeps 8 bits of mantissa: the product agrees with fp32 to about 1 %.
        let exact = a.matmul(&b);
        let err = f64::try_from((mm.to_kind(Kind::Float) - &exact).abs().max()).unwrap()
            / f64::try_from(exact.abs().max()).unwrap();
        assert!(err < 2e-2, "bf16 matmul error {err}");
        // `None` is plain fp32.
        assert_eq!(
            autocast(Device::Cpu, None, || a.matmul(&b).kind()),
            Kind::Float
        );
    }

    /// The CUDA region sets CUDA's autocast state (thread-local flags, settable without a
    /// GPU) and leaves the CPU's alone; what CUDA kernels then do is libtorch's.
    #[test]
    fn a_cuda_region_turns_on_cuda_autocast_in_bf16() {
        let cuda = Device::Cuda(0);
        let (on, dtype, cpu_on) = autocast(cuda, Some(Kind::BFloat16), || {
            // SAFETY: see the module comment.
            let dtype = unsafe { at_get_autocast_dtype(DEVICE_CUDA) };
            (is_enabled(cuda), dtype, is_enabled(Device::Cpu))
        });
        assert!(on && !cpu_on);
        assert_eq!(dtype, 15);
        assert!(!is_enabled(cuda));
        // SAFETY: see the module comment.
        assert_eq!(unsafe { at_get_autocast_dtype(DEVICE_CUDA) }, 5);
    }
}
