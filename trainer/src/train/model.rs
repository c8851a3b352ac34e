//! What a tokenizer run trains: the `AEModel` plus (stage 1) its auxiliary decoders, built
//! fresh (spec §2.5 init), or loaded from a step folder / released checkpoint, and written
//! back as a step folder: `model.safetensors` + `config.json` (the released layout, loadable
//! by `encode`/`reconstruct` and the official `AEModel.from_pretrained`) and
//! `aux.safetensors` (the reference's `decoder_{name}.*`, `post_quant_conv_{name}`,
//! `to_pixel_{name}` names).

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use maetok_teachers::weights::Weights;
use tch::Tensor;

use crate::maetok::aux::AuxDecoder;
use crate::maetok::decoder::DecoderNames;
use crate::maetok::init::{init_decoder, init_state_dict};
use crate::maetok::model::write_safetensors_atomic;
use crate::maetok::{AeConfig, AeModel};

use super::config::TrainConfig;

pub struct Tokenizer {
    pub ae: AeModel,
    pub aux: Vec<AuxDecoder>,
}

impl Tokenizer {
    /// A freshly initialised model; `target_dims` gives each aux target column's width.
    pub fn fresh(cfg: &TrainConfig, target_dims: &HashMap<String, i64>) -> anyhow::Result<Self> {
        let arch = cfg.arch();
        let mut sd = init_state_dict(&arch);
        for a in &cfg.aux {
            let dim = *target_dims
                .get(&a.target)
                .with_context(|| format!("no width known for target `{}`", a.target))?;
            init_decoder(
                &mut sd,
                &DecoderNames::aux(&a.name),
                &cfg.aux_shape(dim),
                &arch,
            );
        }
        let mut w = Weights::from_tensors(Path::new("<fresh init>"), "", sd);
        let aux = Self::aux_from(&mut w, cfg, arch.latent_dim)?;
        let ae = AeModel::from_weights(&mut w, cfg.ae_config())?;
        Ok(Self { ae, aux })
    }

    fn aux_from(
        w: &mut Weights,
        cfg: &TrainConfig,
        latent_dim: i64,
    ) -> anyhow::Result<Vec<AuxDecoder>> {
        cfg.aux
            .iter()
            .map(|a| {
                AuxDecoder::from_weights(w, &a.name, a.loss, latent_dim, cfg.model.aux_heads)
                    .with_context(|| format!("auxiliary decoder `{}`", a.name))
            })
            .collect()
    }

    /// `dir/model.safetensors` + `config.json`, and with `aux` the decoders of `cfg.aux`
    /// from `dir/aux.safetensors`.
    pub fn load(dir: &Path, cfg: &TrainConfig, aux: bool) -> anyhow::Result<Self> {
        let ae = AeModel::load(dir).with_context(|| format!("loading {}", dir.display()))?;
        let aux = if aux && !cfg.aux.is_empty() {
            let p = dir.join("aux.safetensors");
            let mut w = Weights::load(&p, "written by `maetok train tokenizer`")?;
            let latent_dim = ae.config.codebook_embed_dim;
            Self::aux_from(&mut w, cfg, latent_dim)?
        } else {
            Vec::new()
        };
        Ok(Self { ae, aux })
    }

    pub fn to(&self, device: tch::Device) -> Self {
        Self {
            ae: self.ae.to(device, tch::Kind::Float),
            aux: self
                .aux
                .iter()
                .map(|a| AuxDecoder {
                    name: a.name.clone(),
                    loss: a.loss,
                    decoder: a.decoder.to(device, tch::Kind::Float),
                })
                .collect(),
        }
    }

    /// Every aux tensor (unused ones included) under the reference's names.
    pub fn aux_state_dict(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for a in &self.aux {
            a.state_dict(&mut out);
        }
        out
    }

    /// What stage 1 trains: the encoder side, the pixel decoder and the auxiliary decoders.
    pub fn stage1_params(&self) -> Vec<(String, Tensor)> {
        let mut out = self.ae.encoder_params();
        out.extend(self.ae.decoder_params());
        for a in &self.aux {
            a.params(&mut out);
        }
        out
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
        write_safetensors_atomic(&swap(self.ae.state_dict()), &dir.join("model.safetensors"))?;
        let cfg = serde_json::to_vec_pretty(&self.ae.config.to_official_json())?;
        maetok_pipeline::atomic::write(&dir.join("config.json"), &cfg)?;
        if !self.aux.is_empty() {
            write_safetensors_atomic(&swap(self.aux_state_dict()), &dir.join("aux.safetensors"))?;
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
            let t =
                Tensor::read_safetensors(&p).with_context(|| format!("reading {}", p.display()))?;
            out.extend(t);
        }
    }
    Ok(out)
}
