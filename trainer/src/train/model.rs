//! What a tokenizer run trains: the `AEModel` plus (stage 1) its auxiliary decoders, built
//! fresh (spec §2.5 init), or loaded from a step folder / released checkpoint, and written
//! back as a step folder: `model.safetensors` + `config.json` (the released layout, loadable
//! by `encode`/`reconstruct` and the official `AEModel.from_pretrained`) and
//! `aux.safetensors` (the reference's `decoder_{name}.*`, `post_quant_conv_{name}`,
//! `to_pixel_{name}` names).

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use maetok_models::maetok::aux::AuxDecoder;
use maetok_models::maetok::decoder::DecoderNames;
use maetok_models::maetok::{AeConfig, AeModel, DecoderShape, DECODER};
use maetok_nn::vars::{self, Vars};
use maetok_nn::weights::{write_safetensors_atomic, Weights};
use tch::Tensor;

use super::config::TrainConfig;

pub struct Tokenizer {
    pub ae: AeModel,
    pub aux: Vec<AuxDecoder>,
    /// The auxiliary decoders' tensors (the autoencoder's are `ae.vars`).
    pub aux_vars: Vars,
}

/// Which tensors a stage trains (spec §5.4: stage 2 freezes the encoder side).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trained {
    /// Stage 1: everything, auxiliary decoders included.
    All,
    /// Stage 2: the pixel decoder.
    Decoder,
}

impl Tokenizer {
    /// A freshly initialised model (spec §2.5, drawn from libtorch's generator in the
    /// reference's order: the autoencoder, then each auxiliary decoder); `target_dims`
    /// gives each aux target column's width.
    pub fn fresh(cfg: &TrainConfig, target_dims: &HashMap<String, i64>) -> anyhow::Result<Self> {
        let shape = cfg.model.shape();
        let aux_shapes = cfg
            .aux
            .iter()
            .map(|a| {
                let dim = *target_dims
                    .get(&a.target)
                    .with_context(|| format!("no width known for target `{}`", a.target))?;
                Ok(cfg.model.aux_shape(dim))
            })
            .collect::<anyhow::Result<Vec<DecoderShape>>>()?;
        let ae = AeModel::fresh(shape)?;
        let (aux, aux_vars) = vars::init(|vb| {
            cfg.aux
                .iter()
                .zip(&aux_shapes)
                .map(|(a, d)| AuxDecoder::new(&vb, &a.name, a.loss, d, &shape))
                .collect::<Result<Vec<_>, _>>()
        })?;
        Ok(Self { ae, aux, aux_vars })
    }

    /// `dir/model.safetensors` + `config.json`, and with `aux` the decoders of `cfg.aux`
    /// from `dir/aux.safetensors`.
    pub fn load(dir: &Path, cfg: &TrainConfig, aux: bool) -> anyhow::Result<Self> {
        let ae = AeModel::load(dir).with_context(|| format!("loading {}", dir.display()))?;
        if !aux || cfg.aux.is_empty() {
            return Ok(Self {
                ae,
                aux: Vec::new(),
                aux_vars: Vars::default(),
            });
        }
        let p = dir.join("aux.safetensors");
        let w = Weights::load(&p, "written by `maetok train tokenizer`")?;
        let shapes = cfg
            .aux
            .iter()
            .map(|a| {
                DecoderShape::read(&w, &DecoderNames::aux(&a.name), cfg.model.aux_heads)
                    .with_context(|| format!("auxiliary decoder `{}`", a.name))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let shape = ae.shape;
        let (aux, aux_vars, _) = vars::load(w, |vb| {
            cfg.aux
                .iter()
                .zip(&shapes)
                .map(|(a, d)| AuxDecoder::new(&vb, &a.name, a.loss, d, &shape))
                .collect::<Result<Vec<_>, _>>()
        })
        .with_context(|| format!("loading {}", p.display()))?;
        Ok(Self { ae, aux, aux_vars })
    }

    /// Move every tensor to `device` (fp32), in place.
    pub fn to(&mut self, device: tch::Device) {
        self.ae.to(device, tch::Kind::Float);
        self.aux_vars.to(device, tch::Kind::Float);
    }

    /// Every tensor of the model, parameters and buffers (what rank 0 broadcasts).
    pub fn state(&self) -> Vec<Tensor> {
        self.ae
            .vars
            .named()
            .into_iter()
            .chain(self.aux_vars.named())
            .map(|(_, t)| t)
            .collect()
    }

    /// What a stage trains, under the reference's names, in declaration order.
    pub fn params(&self, trained: Trained) -> Vec<(String, Tensor)> {
        match trained {
            Trained::All => {
                let mut out = self.ae.vars.params(|_| true);
                out.extend(self.aux_vars.params(|_| true));
                out
            }
            Trained::Decoder => self.ae.vars.params(|p| p == DECODER),
        }
    }

    /// Write `model.safetensors`, `config.json` and (with aux decoders) `aux.safetensors`
    /// into `dir`, with the tensors named in `replace` swapped in (the EMA copy).
    pub fn save(&self, dir: &Path, replace: Option<&HashMap<&str, &Tensor>>) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        let swap = |sd: Vec<(String, Tensor)>| -> Vec<(String, Tensor)> {
            sd.into_iter()
                .map(|(k, t)| match replace.and_then(|r| r.get(k.as_str())) {
                    Some(e) => (k, e.shallow_clone()),
                    None => (k, t),
                })
                .collect()
        };
        write_safetensors_atomic(&swap(self.ae.vars.named()), &dir.join("model.safetensors"))?;
        self.ae.config.save(dir)?;
        if !self.aux.is_empty() {
            write_safetensors_atomic(&swap(self.aux_vars.named()), &dir.join("aux.safetensors"))?;
        }
        Ok(())
    }

    pub fn config(&self) -> &AeConfig {
        &self.ae.config
    }
}

/// The tensors of `dir`'s `model.safetensors` and `aux.safetensors` (if present) by name.
pub fn read_tensors(dir: &Path) -> anyhow::Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for f in ["model.safetensors", "aux.safetensors"] {
        let p = dir.join(f);
        if p.exists() {
            out.extend(crate::train::restore::read_state_file(
                &p,
                tch::Device::Cpu,
            )?);
        }
    }
    Ok(out)
}
