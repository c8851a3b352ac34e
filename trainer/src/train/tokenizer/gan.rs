//! The GAN side of a tokenizer run (spec §5.2): the DINO discriminator, its optimiser and
//! LeCAM's EMAs; where its heads start; its step after the generator's; its files in a step
//! folder.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tch::{Device, Tensor};

use super::{resolve_from, Stage};
use crate::losses::diffaug::SampleDraws;
use crate::losses::disc::Discriminator;
use crate::losses::gan::{discriminator_loss, LeCam};
use crate::run::{read_state, TrainState};
use crate::train::adamw::AdamW;
use crate::train::config::TrainConfig;
use crate::train::pool::Pool;
use crate::train::restore::read_state_file;
use crate::train::rng::{seed_torch_for, SplitMix, Stream};
use maetok_nn::autocast::autocast;
use maetok_nn::weights::write_safetensors_atomic;

pub struct GanState {
    pub disc: Discriminator,
    opt: AdamW,
    pub lecam: LeCam,
}

impl GanState {
    /// The discriminator when `gan.disc_weight > 0`: heads initialised from the seed (like
    /// the model), then taken from the step folder a run resumes from, or for stage 2 from
    /// the stage-1 run when it has them.
    pub fn start(
        cfg: &TrainConfig,
        stage: Stage,
        resume: Option<(&Path, &TrainState)>,
        device: Device,
    ) -> anyhow::Result<Option<Self>> {
        if cfg.gan.disc_weight <= 0.0 {
            return Ok(None);
        }
        let path = cfg
            .gan
            .backbone
            .as_ref()
            .context("gan.backbone is not set")?;
        seed_torch_for(cfg.train.seed, 1, Stream::Init);
        let disc = Discriminator::new(path, cfg.gan.backbone_heads, device)?;
        let opt = AdamW::new(&disc.params(), cfg.adamw());
        let mut g = GanState {
            disc,
            opt,
            lecam: LeCam::default(),
        };
        let src: Option<PathBuf> = match (resume, stage) {
            (Some((d, _)), _) => Some(d.to_path_buf()),
            (None, Stage::Decoder) => cfg
                .decoder_ft
                .from
                .as_ref()
                .map(|f| resolve_from(f, false))
                .transpose()?
                .filter(|d| d.join("disc.safetensors").exists()),
            _ => None,
        };
        if let Some(dir) = src {
            g.load(&dir, device, resume.is_some())?;
            if let Some((_, st)) = resume {
                g.lecam = st.lecam;
            }
            tracing::info!("discriminator heads from {}", dir.display());
        }
        Ok(Some(g))
    }

    /// The discriminator's step on the batch's real `x` and reconstruction `xhat`, at
    /// learning rate `lr`; returns what it logs.
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &mut self,
        cfg: &TrainConfig,
        x: &Tensor,
        xhat: &Tensor,
        global_step: u64,
        lr: f64,
        (device, kind): (Device, Option<tch::Kind>),
        aug: &mut SampleDraws,
        crop: &mut SplitMix,
        pool: &mut Pool,
    ) -> Result<Vec<(String, f64)>, maetok_dist::DistError> {
        // Pooled over the ranks: every rank computes the same loss and head gradients.
        let d = autocast(device, kind, || {
            discriminator_loss(
                &self.disc,
                x,
                xhat,
                &cfg.gan,
                global_step,
                &mut self.lecam,
                aug,
                crop,
                pool,
            )
        })?;
        self.opt.zero_grad();
        d.loss.backward();
        let dn = self.opt.clip_grad_norm(if cfg.optim.grad_clip > 0.0 {
            cfg.optim.grad_clip
        } else {
            f64::INFINITY
        });
        self.opt.step(lr);
        Ok(vec![
            (
                "d_loss".to_string(),
                f64::try_from(&d.loss).unwrap_or(f64::NAN),
            ),
            ("d_hinge".to_string(), d.hinge),
            ("d_lecam".to_string(), d.lecam),
            ("d_cr".to_string(), d.cr),
            ("d_grad_norm".to_string(), dn),
            ("logits_real".to_string(), d.logits_real),
            ("logits_fake".to_string(), d.logits_fake),
        ])
    }

    /// The trained tensors (for the check that every rank holds the same).
    pub fn trained(&self) -> Vec<Tensor> {
        self.disc.params().into_iter().map(|(_, t)| t).collect()
    }

    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        write_safetensors_atomic(&self.disc.state_dict(), &dir.join("disc.safetensors"))?;
        write_safetensors_atomic(
            &self.opt.state_tensors(),
            &dir.join("disc_optimizer.safetensors"),
        )?;
        Ok(())
    }

    /// Heads from `dir` (a step folder, or the folder above an `ema/`); with `optimizer`,
    /// the discriminator's optimiser state too.
    fn load(&mut self, dir: &Path, device: Device, optimizer: bool) -> anyhow::Result<()> {
        let read = |p: PathBuf| read_state_file(&p, device);
        self.disc
            .load_state(read(dir.join("disc.safetensors"))?)
            .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
        if optimizer {
            let st = read_state(dir)?;
            self.opt
                .load_state(st.step, read(dir.join("disc_optimizer.safetensors"))?)
                .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
        }
        Ok(())
    }
}
