//! The sample grid a SiT run draws every `train.sample_every` steps: fixed noise and labels
//! (drawn once from the seed), the EMA weights, the grid sampler, decoded through the
//! tokenizer into `samples/step-NNNNNNN.png`, one labelled row per class. The same noise
//! at every step, so the pictures show the model's progress and nothing else.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use maetok_diffusion::SamplerSpec;
use maetok_models::denoiser::Denoiser;
use maetok_models::maetok::AeModel;
use maetok_nn::Weights;
use tch::{Device, Kind, Tensor};

use super::SitTrainConfig;
use crate::sample::{decode_latents, keyed_normal, sample_latents, Request};
use crate::train::ema::Ema;
use crate::train::rng::Stream;

pub struct Grid {
    spec: SamplerSpec,
    labels: Vec<i64>,
    per_class: usize,
    /// (N, L, C) f32 on the CPU.
    noise: Tensor,
    tokenizer: Option<AeModel>,
    stats: (f64, f64),
    seed: u64,
}

impl Grid {
    pub fn new(
        cfg: &SitTrainConfig,
        (tokens, channels): (i64, i64),
        stats: (f64, f64),
        device: Device,
    ) -> anyhow::Result<Self> {
        let classes = cfg.grid_labels();
        let per_class = cfg.train.grid_per_class.max(1);
        let labels: Vec<i64> = classes
            .iter()
            .flat_map(|&c| std::iter::repeat_n(c, per_class))
            .collect();
        let rows: Vec<u64> = (0..labels.len() as u64).collect();
        let noise = keyed_normal(cfg.train.seed, 0, Stream::Grid, &rows, &[tokens, channels]);
        let tokenizer = match &cfg.data.tokenizer {
            Some(dir) => {
                let mut ae = AeModel::load(dir)
                    .with_context(|| format!("data.tokenizer = {}", dir.display()))?;
                ae.to(device, Kind::Float);
                Some(ae)
            }
            None => {
                tracing::warn!("no data.tokenizer: the run draws no sample grids");
                None
            }
        };
        Ok(Self {
            spec: cfg.grid_spec(),
            labels,
            per_class,
            noise,
            tokenizer,
            stats,
            seed: cfg.train.seed,
        })
    }

    /// Samples with `model`'s architecture and `ema`'s weights, decodes, writes `path`.
    pub fn write(
        &self,
        model: &Denoiser,
        ema: &Ema,
        device: Device,
        path: &Path,
    ) -> anyhow::Result<()> {
        let Some(tokenizer) = &self.tokenizer else {
            return Ok(());
        };
        let ema: HashMap<&str, &Tensor> =
            ema.tensors().iter().map(|(k, t)| (k.as_str(), t)).collect();
        let state: HashMap<String, Tensor> = model
            .vars()
            .named()
            .into_iter()
            .map(|(k, t)| {
                let t = ema.get(k.as_str()).map_or(t, |e| e.shallow_clone());
                (k, t.detach().to_device(Device::Cpu).to_kind(Kind::Float))
            })
            .collect();
        let mut sit = Denoiser::from_weights(
            Weights::from_tensors(Path::new("<ema weights>"), "", state),
            model.config(),
        )?;
        sit.to(device, Kind::Float);
        let labels = Tensor::from_slice(&self.labels);
        let x = sample_latents(&Request {
            sit: &sit,
            spec: &self.spec,
            noise: &self.noise,
            labels: &labels,
            seed: self.seed,
            first: 0,
            autocast: None,
        })?;
        let images = decode_latents(tokenizer, &x, self.stats)?;
        let side = tokenizer.shape.image_size() as usize;
        let rows: Vec<(String, Vec<&[u8]>)> = images
            .chunks(self.per_class)
            .zip(self.labels.chunks(self.per_class))
            .map(|(imgs, l)| {
                (
                    format!("class {}", l[0]),
                    imgs.iter().map(|v| v.as_slice()).collect(),
                )
            })
            .collect();
        let rows: Vec<(&str, Vec<&[u8]>)> =
            rows.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
        crate::viz::write_rows(&rows, side, path)
    }
}
