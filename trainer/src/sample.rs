//! Sampling a SiT and decoding its latents, for `maetok sample` and the training loop's
//! grids. Every draw is keyed by (seed, sample index[, sampler step]) (`train::rng`), so a
//! sample is the same whatever the batch size, the chunk it falls in, or the rank that
//! draws it.

use maetok_diffusion::{sample, SamplerSpec};
use maetok_models::denoiser::Denoiser;
use maetok_models::maetok::AeModel;
use maetok_nn::autocast::autocast;
use tch::{Device, Kind, Tensor};

use crate::train::rng::{sample_rngs, Stream};

/// What to sample.
pub struct Request<'a> {
    pub sit: &'a Denoiser,
    pub spec: &'a SamplerSpec,
    /// x at t = 1, (N, L, C).
    pub noise: &'a Tensor,
    /// (N,) i64.
    pub labels: &'a Tensor,
    /// The seed of the SDE's per-step noise.
    pub seed: u64,
    /// The global index of row 0 (the SDE noise of sample i is keyed by `first + i`).
    pub first: u64,
    /// Autocast dtype for the network (bf16 on CUDA), or plain model dtype.
    pub autocast: Option<Kind>,
}

/// One gaussian tensor of `shape` per sample index, from libtorch's CPU generator seeded by
/// `(seed, step, stream, index)`: the same numbers on any device and any batch split.
pub fn keyed_normal(seed: u64, step: u64, stream: Stream, rows: &[u64], shape: &[i64]) -> Tensor {
    let per: Vec<Tensor> = sample_rngs(seed, step, stream, rows)
        .iter_mut()
        .map(|r| {
            tch::manual_seed((r.next_u64() >> 1) as i64);
            Tensor::randn(shape, (Kind::Float, Device::Cpu))
        })
        .collect();
    Tensor::stack(&per, 0)
}

/// Runs the sampler of `r.spec` on `r.sit`'s device; returns (N, L, C) f32 on the CPU, in
/// the model's normalised space.
pub fn sample_latents(r: &Request) -> anyhow::Result<Tensor> {
    let device = r.sit.device();
    let (n, shape) = (r.noise.size()[0], r.noise.size()[1..].to_vec());
    let rows: Vec<u64> = (r.first..r.first + n as u64).collect();
    let labels = r.labels.to_device(device);
    let cfg = r.sit.config();
    let null = cfg.null_label().unwrap_or(cfg.num_classes());
    let mut velocity = |x: &Tensor, t: &Tensor, y: &Tensor| {
        autocast(device, r.autocast, || r.sit.forward(x, t, y)).to_kind(Kind::Float)
    };
    let mut step_noise = |i: usize| {
        keyed_normal(r.seed, i as u64, Stream::SdeNoise, &rows, &shape).to_device(device)
    };
    let x = tch::no_grad(|| {
        sample(
            r.spec,
            &mut velocity,
            &r.noise.to_device(device),
            &labels,
            null,
            Kind::Float,
            &mut step_noise,
        )
    })?;
    Ok(x.to_kind(Kind::Float).to_device(Device::Cpu))
}

/// Latents in the model's normalised space (N, L, C) → RGB8 images through `ae` (spec
/// §7.4: `z = x·std + mean`, decode, clamp to [−1, 1], `(x + 1)/2 · 255`, rounded as the
/// reference's uint8 mapping).
pub fn decode_latents(ae: &AeModel, x: &Tensor, stats: (f64, f64)) -> anyhow::Result<Vec<Vec<u8>>> {
    let device = ae.quant_conv.weight.device();
    let z = x.to_device(device) * stats.1 + stats.0;
    let images = tch::no_grad(|| ae.decode(&z));
    Ok(crate::viz::tensor_to_rgb8(&images))
}
