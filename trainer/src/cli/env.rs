//! `maetok env`: what this binary runs on. Also the quickest check that libtorch is linked
//! and found without `LD_LIBRARY_PATH` (the rpath set in `build.rs`).

use std::process::ExitCode;

pub fn run() -> anyhow::Result<ExitCode> {
    println!("maetok {}", env!("CARGO_PKG_VERSION"));
    println!("libtorch threads  {}", tch::get_num_threads());
    println!(
        "mkl / mkldnn      {} / {}",
        tch::utils::has_mkl(),
        tch::utils::has_mkldnn()
    );
    let cuda = tch::Cuda::is_available();
    println!("cuda available    {cuda}");
    if cuda {
        println!("cuda devices      {}", tch::Cuda::device_count());
        println!("cudnn             {}", tch::Cuda::cudnn_is_available());
    }
    // A tiny tensor op proves the library is not only linked but works.
    let t = tch::Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
    println!(
        "tensor check      sum([1,2,3]) = {}",
        t.sum(tch::Kind::Float).double_value(&[])
    );
    println!(
        "cpu cores         {}",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    Ok(ExitCode::SUCCESS)
}
