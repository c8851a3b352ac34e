//! Launching a job's ranks by hand from a test (the variables a hand launch exports, as a
//! debugger or another launcher does), and comparing what they trained.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use tch::Tensor;

use crate::maetok;

/// Each process at 1 thread (4 ranks share 2 cores) and the kernels of any x86-64 CPU (as
/// the golden files are recorded), so the measured margins hold on every machine.
pub const ENV: [(&str, &str); 5] = [
    ("OMP_NUM_THREADS", "1"),
    ("MKL_NUM_THREADS", "1"),
    ("ATEN_CPU_CAPABILITY", "default"),
    ("MKL_CBWR", "COMPATIBLE"),
    ("ONEDNN_MAX_CPU_ISA", "SSE41"),
];

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `world` processes of `maetok args(rank)…` with the variables a hand launch
/// exports.
pub fn spawn(
    world: usize,
    args: impl Fn(usize) -> Vec<OsString>,
    per_rank: impl Fn(usize, &mut Command),
) -> Vec<Child> {
    let port = free_port().to_string();
    (0..world)
        .map(|rank| {
            let mut c = maetok();
            c.args(args(rank)).envs(ENV);
            if world > 1 {
                c.env("RANK", rank.to_string())
                    .env("WORLD_SIZE", world.to_string())
                    .env("MASTER_ADDR", "127.0.0.1")
                    .env("MASTER_PORT", &port);
            }
            per_rank(rank, &mut c);
            c.stdout(Stdio::null()).stderr(Stdio::piped());
            c.spawn().unwrap()
        })
        .collect()
}

pub fn wait_all(children: Vec<Child>) -> Vec<Output> {
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

pub fn all_ok(outs: &[Output]) {
    for (r, o) in outs.iter().enumerate() {
        assert!(
            o.status.success(),
            "rank {r}: {:?}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// The tensors of `file` (e.g. `checkpoints/step-0000030/model.safetensors`) of `run`.
pub fn tensors(run: &Path, file: &str) -> HashMap<String, Tensor> {
    let p = run.join(file);
    Tensor::read_safetensors(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .into_iter()
        .collect()
}

/// max|Δ| over every weight of two step folders, relative to the largest weight. (Per
/// tensor, the ratio is no measure here: AdamW moves a weight by about lr whatever the
/// size of its gradient, so the zero-initialised biases and modulations, a few lr steps
/// from 0 after 30 steps, differ by a good part of their size at any change of summation
/// order, 1 vs 2 threads included.)
pub fn rel_diff(a: &HashMap<String, Tensor>, b: &HashMap<String, Tensor>) -> f64 {
    assert_eq!(a.len(), b.len());
    let max = |f: &dyn Fn(&String, &Tensor) -> Tensor| {
        a.iter()
            .map(|(k, t)| f64::try_from(f(k, t).abs().max()).unwrap())
            .fold(0.0, f64::max)
    };
    max(&|k, t| t - &b[k]) / max(&|_, t| t.shallow_clone()).max(1e-12)
}

/// `args` as the `OsString`s `spawn` takes.
pub fn os_args(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}
