//! The NCCL backend, through cudarc's raw layer on libtorch's tensors (cudarc's safe
//! `nccl::Comm` takes only cudarc-owned memory and panics in its drop; this type does
//! neither). Rank 0 makes the unique id and hands it to the others through the
//! rendezvous, whose TCP connections stay open beside the communicator: they carry the
//! abort messages and tell a dead rank from a slow one.
//!
//! Collectives are enqueued on libtorch's current CUDA stream of this thread
//! (`c10::cuda::getCurrentCUDAStream(device).stream()`, bound by name from libc10_cuda as
//! the autocast bindings bind `at::autocast`), so they run after the backward pass that
//! wrote the gradients and before the optimiser that reads them. Each collective is then
//! waited for by a watchdog: it polls the stream, `ncclCommGetAsyncError` and the peers'
//! connections until the work is done, and on an error, a dead peer or `timeout` it aborts
//! the communicator (`ncclCommAbort`) and returns the error naming the rank where known.
//!
//! Not shown on a GPU yet (no device was lent when it was written): the device script
//! `benches/gpu/distributed.sh` runs it at world size 1 on the H200.

use std::time::{Duration, Instant};

use cudarc::nccl::{result, sys};
use tch::{Device, Kind, Tensor};

use crate::rendezvous::{self, Star};
use crate::{Collective, DistError, Launch};

pub struct NcclComm {
    comm: sys::ncclComm_t,
    /// libtorch's current stream on this rank's GPU, taken when the job was joined.
    stream: sys::cudaStream_t,
    star: Star,
    device: usize,
    timeout: Duration,
    calls: u64,
    broken: bool,
}

fn nccl_err(what: &str, e: result::NcclError) -> DistError {
    DistError::Unsupported(format!("NCCL {what}: {:?}", e.0))
}

fn dtype(kind: Kind) -> Result<sys::ncclDataType_t, DistError> {
    use sys::ncclDataType_t as T;
    Ok(match kind {
        Kind::Float => T::ncclFloat32,
        Kind::Double => T::ncclFloat64,
        Kind::Half => T::ncclFloat16,
        Kind::BFloat16 => T::ncclBfloat16,
        Kind::Int64 => T::ncclInt64,
        Kind::Int => T::ncclInt32,
        k => {
            return Err(DistError::Unsupported(format!(
                "NCCL cannot carry {k:?} tensors"
            )))
        }
    })
}

/// `c10::cuda::CUDAStream` by value: a `c10::Stream` (device type, device index, stream
/// id), trivially copyable, so the Itanium C++ ABI returns it in two registers as it would
/// this C struct.
#[repr(C)]
struct CudaStream {
    device_type: i8,
    device_index: i8,
    id: i64,
}

const GET_CURRENT_STREAM: &[u8] = b"_ZN3c104cuda20getCurrentCUDAStreamEa\0";
const STREAM_OF: &[u8] = b"_ZNK3c104cuda10CUDAStream6streamEv\0";

type GetCurrentStream = unsafe extern "C" fn(i8) -> CudaStream;
type StreamOf = unsafe extern "C" fn(*const CudaStream) -> *mut std::ffi::c_void;

/// The two libc10_cuda functions, looked up in the libraries this process has loaded (the
/// binary links libtorch_cuda, which brings libc10_cuda, on CUDA builds of libtorch).
fn stream_functions() -> Result<(GetCurrentStream, StreamOf), DistError> {
    let this = libloading::os::unix::Library::this();
    let missing = |e: libloading::Error| {
        DistError::Unsupported(format!(
            "libtorch's CUDA stream functions are not loaded ({e}): is this a CUDA build of libtorch?"
        ))
    };
    // SAFETY: the symbols have these signatures (c10/cuda/CUDAStream.h; see `CudaStream`).
    unsafe {
        let get = *this
            .get::<GetCurrentStream>(GET_CURRENT_STREAM)
            .map_err(missing)?;
        let of = *this.get::<StreamOf>(STREAM_OF).map_err(missing)?;
        Ok((get, of))
    }
}

/// libtorch's current CUDA stream on `device` for the calling thread. Call only when CUDA
/// is available (libtorch throws otherwise, and a C++ exception must not cross into Rust).
fn current_stream(device: usize) -> Result<sys::cudaStream_t, DistError> {
    let (get, of) = stream_functions()?;
    // SAFETY: CUDA is available (the caller's contract) and `s` lives across the call.
    unsafe {
        let s = get(device as i8);
        Ok(of(&s) as sys::cudaStream_t)
    }
}

/// Whether libnccl (as `libnccl.so` on the library path) and the CUDA driver can be loaded.
pub fn available() -> bool {
    // SAFETY: these only try to dlopen the libraries.
    unsafe { cudarc::nccl::sys::is_culib_present() && cudarc::driver::sys::is_culib_present() }
}

impl NcclComm {
    /// Joins the job on GPU `device` (this rank's).
    pub fn join(
        launch: &Launch,
        identity: &str,
        timeout: Duration,
        device: usize,
    ) -> Result<Self, DistError> {
        if !available() {
            return Err(DistError::Unsupported(
                "the NCCL backend needs libnccl.so and libcuda.so on the library path: link the \
                 torch wheel's nvidia/nccl/lib/libnccl.so.2 as libnccl.so in a folder on \
                 LD_LIBRARY_PATH (docs/distributed.md), or set dist.backend = \"cpu\""
                    .into(),
            ));
        }
        let id = if launch.rank == 0 {
            let id = result::get_uniqueid().map_err(|e| nccl_err("ncclGetUniqueId", e))?;
            id.internal.iter().map(|&c| c as u8).collect()
        } else {
            Vec::new()
        };
        let (star, payload) = rendezvous::join(launch, identity, timeout, &id)?;
        if payload.len() != 128 {
            return Err(DistError::Protocol {
                rank: 0,
                what: format!("an NCCL unique id of {} bytes", payload.len()),
            });
        }
        let mut uid = sys::ncclUniqueId { internal: [0; 128] };
        for (d, s) in uid.internal.iter_mut().zip(&payload) {
            *d = *s as std::ffi::c_char;
        }
        // NCCL takes the calling thread's current device: make it this rank's GPU.
        // SAFETY: plain driver calls on a valid ordinal.
        unsafe {
            cudarc::driver::result::init()
                .map_err(|e| DistError::Unsupported(format!("cuInit: {e:?}")))?;
            let dev = cudarc::driver::result::device::get(device as i32)
                .map_err(|e| DistError::Unsupported(format!("CUDA device {device}: {e:?}")))?;
            let ctx = cudarc::driver::result::primary_ctx::retain(dev)
                .map_err(|e| DistError::Unsupported(format!("CUDA context {device}: {e:?}")))?;
            cudarc::driver::result::ctx::set_current(ctx)
                .map_err(|e| DistError::Unsupported(format!("CUDA context {device}: {e:?}")))?;
        }
        if !tch::Cuda::is_available() {
            return Err(DistError::Unsupported("the NCCL backend needs CUDA".into()));
        }
        let stream = current_stream(device)?;
        let mut comm: sys::ncclComm_t = std::ptr::null_mut();
        // SAFETY: `comm` is a valid out pointer; every rank calls with the same id and size.
        unsafe {
            result::comm_init_rank(&mut comm, launch.world as i32, uid, launch.rank as i32)
                .map_err(|e| nccl_err("ncclCommInitRank", e))?;
        }
        Ok(Self {
            comm,
            stream,
            star,
            device,
            timeout,
            calls: 0,
            broken: false,
        })
    }

    /// Waits for the enqueued collective: done, an NCCL error, a dead peer, or the timeout.
    fn wait(&mut self, what: &str) -> Result<(), DistError> {
        use cudarc::driver::sys::{cuStreamQuery, cudaError_enum};
        let start = Instant::now();
        let during = format!("in {what} (NCCL collective #{})", self.calls);
        loop {
            // SAFETY: libtorch's stream, alive for the process.
            match unsafe { cuStreamQuery(self.stream as cudarc::driver::sys::CUstream) } {
                cudaError_enum::CUDA_SUCCESS => return Ok(()),
                cudaError_enum::CUDA_ERROR_NOT_READY => {}
                e => return Err(self.fail(DistError::Unsupported(format!("CUDA {e:?} {during}")))),
            }
            let mut state = sys::ncclResult_t::ncclSuccess;
            // SAFETY: a live communicator and a valid out pointer.
            unsafe { sys::ncclCommGetAsyncError(self.comm, &mut state) };
            if !matches!(
                state,
                sys::ncclResult_t::ncclSuccess | sys::ncclResult_t::ncclInProgress
            ) {
                return Err(self.fail(DistError::Unsupported(format!("NCCL {state:?} {during}"))));
            }
            if let Some(e) = self.star.peer_trouble() {
                return Err(self.fail(e));
            }
            if start.elapsed() > self.timeout {
                let e = DistError::Stalled {
                    timeout: self.timeout,
                    during,
                };
                return Err(self.fail(e));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Aborts the communicator (its kernels may wait forever on a dead peer otherwise).
    fn fail(&mut self, e: DistError) -> DistError {
        if !self.broken {
            // SAFETY: a live communicator; abort is the documented way out of a hang.
            unsafe { result::comm_abort(self.comm).ok() };
            self.broken = true;
        }
        e
    }

    fn on_device(&self, t: &Tensor) -> Tensor {
        t.detach().to_device(Device::Cuda(self.device)).contiguous()
    }

    /// Runs the in-place collective `op` on `t`'s bytes on this rank's GPU (`op` gets the
    /// pointer of a contiguous CUDA copy, its element count and NCCL type, the communicator
    /// and the stream; the copy stays alive until `wait` has seen the stream finish), then
    /// writes the result back into `t`.
    fn in_place(
        &mut self,
        t: &Tensor,
        what: &str,
        op: impl FnOnce(
            *mut std::ffi::c_void,
            usize,
            sys::ncclDataType_t,
            sys::ncclComm_t,
            sys::cudaStream_t,
        ) -> Result<result::NcclStatus, DistError>,
    ) -> Result<(), DistError> {
        self.check()?;
        self.calls += 1;
        let buf = self.on_device(t);
        let ty = dtype(buf.kind())?;
        op(buf.data_ptr(), buf.numel(), ty, self.comm, self.stream)?;
        self.wait(what)?;
        tch::no_grad(|| t.shallow_clone().copy_(&buf));
        Ok(())
    }

    fn check(&self) -> Result<(), DistError> {
        if self.broken {
            return Err(DistError::Aborted(
                "the NCCL communicator was aborted".into(),
            ));
        }
        Ok(())
    }
}

impl Drop for NcclComm {
    fn drop(&mut self) {
        if !self.broken && !self.comm.is_null() {
            // SAFETY: destroyed once; errors are ignored (dropping must not panic).
            unsafe { result::comm_destroy(self.comm).ok() };
        }
    }
}

impl Collective for NcclComm {
    fn rank(&self) -> usize {
        self.star.rank
    }
    fn world(&self) -> usize {
        self.star.world
    }
    fn backend(&self) -> &'static str {
        "nccl"
    }

    fn all_reduce_sum(&mut self, t: &Tensor) -> Result<(), DistError> {
        self.in_place(t, "all-reduce", |p, n, ty, comm, stream| {
            // SAFETY: see `in_place`; NCCL allows send = receive.
            unsafe { result::all_reduce(p, p, n, ty, sys::ncclRedOp_t::ncclSum, comm, stream) }
                .map_err(|e| nccl_err("ncclAllReduce", e))
        })
    }

    fn broadcast(&mut self, t: &Tensor) -> Result<(), DistError> {
        self.in_place(t, "broadcast", |p, n, ty, comm, stream| {
            // SAFETY: see `in_place`.
            unsafe { result::broadcast(p, p, n, ty, 0, comm, stream) }
                .map_err(|e| nccl_err("ncclBroadcast", e))
        })
    }

    fn all_gather(&mut self, t: &Tensor) -> Result<Tensor, DistError> {
        self.check()?;
        self.calls += 1;
        let buf = self.on_device(t);
        let ty = dtype(buf.kind())?;
        let mut shape = buf.size();
        if shape.is_empty() {
            shape.push(1);
        }
        shape[0] *= self.world() as i64;
        let out = Tensor::empty(shape.as_slice(), (buf.kind(), buf.device()));
        // SAFETY: `out` holds world × numel elements of `ty`, both tensors contiguous CUDA
        // memory alive until `wait` returns.
        unsafe {
            result::all_gather(
                buf.data_ptr(),
                out.data_ptr(),
                buf.numel(),
                ty,
                self.comm,
                self.stream,
            )
            .map_err(|e| nccl_err("ncclAllGather", e))?;
        }
        self.wait("all-gather")?;
        Ok(out.to_device(t.device()))
    }

    fn barrier(&mut self) -> Result<(), DistError> {
        let t = Tensor::zeros([1], (Kind::Float, Device::Cuda(self.device)));
        self.all_reduce_sum(&t)
    }

    fn abort(&mut self, reason: &str) {
        let _ = self.fail(DistError::Aborted(String::new()));
        self.star.abort(reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stream functions are found by name in libc10_cuda (loaded with libtorch_cuda:
    /// the project's torch 2.11 wheel is a CUDA build); calling them needs a GPU, binding
    /// them does not.
    #[test]
    fn libtorch_stream_functions_are_bound_by_name() {
        stream_functions().expect("c10::cuda stream symbols");
    }

    /// Without libnccl.so or a GPU, joining is an error that says what to do, not a panic
    /// (cudarc panics when a library it calls into is missing).
    #[test]
    fn missing_nccl_is_an_error() {
        if available() {
            return; // a GPU machine with NCCL linked: the device script covers it
        }
        let e = NcclComm::join(&Launch::single(), "x", Duration::from_secs(1), 0)
            .err()
            .expect("no NCCL here")
            .to_string();
        assert!(
            e.contains("libnccl.so") && e.contains("dist.backend"),
            "{e}"
        );
    }
}
