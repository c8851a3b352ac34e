//! The `Teacher` trait every target extractor implements, and the registry that builds one
//! from its canonical name (`hog`, `dinov2`, `siglip`, `clip`) and a weight file.
//!
//! Input is what the preprocessor has: a batch of RGB views as a `(B, H, W, 3)` uint8
//! tensor on the CPU. Each teacher normalises it itself (HOG wants the raw pixels, the ViTs
//! their mean/std) and returns `(B, tokens, dim)` f32 on the CPU.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};

use crate::family::{Family, Normalization};
use crate::layout::{self, Layout};
use crate::model_config::{ModelConfig, ModelConfigError};
use crate::vit::{VisionTransformer, VitHyper, VitShape};
use maetok_nn::weights::{file_sha256, WeightError, Weights};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TeacherError {
    #[error(transparent)]
    Weights(#[from] WeightError),
    #[error(transparent)]
    ModelConfig(#[from] ModelConfigError),
    #[error("unknown teacher `{0}` (known: hog, dinov2, siglip, clip)")]
    UnknownTeacher(String),
    #[error("teacher `{name}`: {message}")]
    Config { name: String, message: String },
    #[error("{path}: the weights look like a {found} checkpoint, but the teacher is `{expected}`")]
    FamilyMismatch {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("teacher `{name}` failed on a batch: {message}")]
    Runtime { name: String, message: String },
}

pub trait Teacher: Send {
    /// Canonical name, also the shard column.
    fn name(&self) -> &str;
    /// Input size (h, w) in pixels.
    fn resolution(&self) -> (i64, i64);
    /// Token grid (rows, cols); tokens are row-major.
    fn grid(&self) -> (i64, i64);
    fn dim(&self) -> i64;
    /// Input normalisation, if the teacher uses one.
    fn normalization(&self) -> Option<Normalization>;
    /// Everything that determines the features, for the manifest.
    fn describe(&self) -> serde_json::Value;
    /// `(B, H, W, 3)` uint8 → `(B, tokens, dim)` f32 on the CPU.
    fn features(&self, images: &Tensor) -> Result<Tensor, TeacherError>;
}

/// How to build a teacher.
#[derive(Debug, Clone, PartialEq)]
pub struct TeacherSpec {
    pub name: String,
    pub weights: Option<PathBuf>,
    pub model_config: Option<PathBuf>,
    pub device: Device,
    /// Compute dtype: f32, or bf16 (GPU).
    pub kind: Kind,
    pub resolution: (i64, i64),
    pub patch_size: i64,
    pub normalization: Option<Normalization>,
}

impl TeacherSpec {
    pub fn new(name: &str, weights: Option<PathBuf>) -> Self {
        Self {
            name: name.to_string(),
            weights,
            model_config: None,
            device: Device::Cpu,
            kind: Kind::Float,
            resolution: (256, 256),
            patch_size: 16,
            normalization: None,
        }
    }
}

/// Build the teacher named in `spec`.
pub fn build(spec: &TeacherSpec) -> Result<Box<dyn Teacher>, TeacherError> {
    if spec.name == "hog" {
        return Ok(Box::new(crate::hog_teacher::HogTeacher::new(spec)?));
    }
    let family =
        Family::parse(&spec.name).ok_or_else(|| TeacherError::UnknownTeacher(spec.name.clone()))?;
    Ok(Box::new(VitTeacher::load(family, spec)?))
}

/// Convert a `(B, H, W, 3)` uint8 batch to normalised `(B, 3, H, W)` floats on `device`.
pub fn normalize_images(
    images: &Tensor,
    norm: Normalization,
    device: Device,
    kind: Kind,
) -> Tensor {
    let opts = (Kind::Float, device);
    let mean = Tensor::from_slice(&norm.mean)
        .to_kind(Kind::Float)
        .to_device(device)
        .reshape([1, 3, 1, 1]);
    let std = Tensor::from_slice(&norm.std)
        .to_kind(Kind::Float)
        .to_device(device)
        .reshape([1, 3, 1, 1]);
    let x = images
        .to_device(device)
        .permute([0, 3, 1, 2])
        .to_kind(opts.0)
        / 255.0;
    ((x - mean) / std).to_kind(kind)
}

/// A ViT feature teacher (DINOv2, SigLIP, CLIP).
pub struct VitTeacher {
    family: Family,
    model: VisionTransformer,
    layout: Layout,
    spec: TeacherSpec,
    norm: Normalization,
    weights_sha256: String,
    config: ModelConfig,
}

impl VitTeacher {
    pub fn load(family: Family, spec: &TeacherSpec) -> Result<Self, TeacherError> {
        let hint = family.download_hint();
        let path = spec
            .weights
            .as_deref()
            .ok_or_else(|| TeacherError::Config {
                name: spec.name.clone(),
                message: format!("no weight file given (`weights = \"…\"` / `--weights`). {hint}"),
            })?;
        let mut w = Weights::load(path, hint)?;
        let layout = layout::detect(&mut w)?;
        layout::to_timm(&mut w, layout)?;
        check_family(&w, layout, family)?;
        let config = match (&spec.model_config, sibling_config(path)) {
            (Some(p), _) => ModelConfig::load(p)?,
            (None, Some(p)) => ModelConfig::load(&p)?,
            (None, None) => ModelConfig::default(),
        };
        let width = w.shape("patch_embed.proj.weight").map_or(0, |s| s[0]);
        let num_heads = match config.num_heads.or_else(|| family.default_heads(width)) {
            Some(h) => h,
            None => {
                return Err(TeacherError::Config {
                    name: spec.name.clone(),
                    message: format!(
                        "cannot tell the number of heads of a {width}-wide model; pass its \
                         config.json with `--model-config` / `model_config`"
                    ),
                })
            }
        };
        let hyper = VitHyper {
            num_heads,
            act: config.act.unwrap_or(family.default_act()),
            eps: config.eps.unwrap_or(family.default_eps()),
        };
        let (mut model, left) =
            VisionTransformer::load(w, &hyper, spec.resolution, spec.patch_size)?;
        if !left.is_empty() {
            tracing::warn!(teacher = %spec.name, file = %path.display(), "unused keys: {left:?}");
        }
        model.to(spec.device, spec.kind);
        let weights_sha256 = file_sha256(path).map_err(|e| WeightError::Read {
            path: path.to_path_buf(),
            message: e.to_string(),
            hint: hint.to_string(),
        })?;
        Ok(Self {
            family,
            model,
            layout,
            norm: spec.normalization.unwrap_or(family.default_normalization()),
            spec: spec.clone(),
            weights_sha256,
            config,
        })
    }

    pub fn shape(&self) -> &VitShape {
        &self.model.shape
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    pub fn model(&self) -> &VisionTransformer {
        &self.model
    }

    pub fn model_mut(&mut self) -> &mut VisionTransformer {
        &mut self.model
    }
}

/// The config a hub download puts next to the weights: HF/timm `config.json`, OpenCLIP
/// `open_clip_config.json`.
fn sibling_config(weights: &Path) -> Option<PathBuf> {
    let dir = weights.parent()?;
    ["config.json", "open_clip_config.json"]
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

/// What the (timm-named) weights look like, where the layout leaves it open.
fn check_family(w: &Weights, layout: Layout, family: Family) -> Result<(), TeacherError> {
    let found = match layout {
        Layout::HfDinov2 => Family::Dinov2,
        Layout::HfSiglip => Family::Siglip,
        Layout::HfClip | Layout::OpenClip => Family::Clip,
        Layout::Timm if w.contains("blocks.0.ls1.gamma") => Family::Dinov2,
        Layout::Timm if w.contains("norm_pre.weight") => Family::Clip,
        Layout::Timm if !w.contains("cls_token") => Family::Siglip,
        Layout::Timm => return Ok(()),
    };
    if found != family {
        return Err(TeacherError::FamilyMismatch {
            path: w.path().to_path_buf(),
            found: format!("{} ({})", found.name(), layout.as_str()),
            expected: family.name().to_string(),
        });
    }
    Ok(())
}

/// Run `f`, turning a libtorch panic (shape error, CUDA out of memory) into an error.
pub(crate) fn guarded<T>(name: &str, f: impl FnOnce() -> T) -> Result<T, TeacherError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| TeacherError::Runtime {
        name: name.to_string(),
        message: panic_message(p.as_ref()),
    })
}

/// The input contract of [`Teacher::features`]: a `(B, h, w, 3)` uint8 batch.
pub(crate) fn check_batch(
    name: &str,
    images: &Tensor,
    (h, w): (i64, i64),
) -> Result<(), TeacherError> {
    let s = images.size();
    if s.len() != 4 || s[1] != h || s[2] != w || s[3] != 3 || images.kind() != Kind::Uint8 {
        return Err(TeacherError::Runtime {
            name: name.to_string(),
            message: format!(
                "expected a (B, {h}, {w}, 3) uint8 batch, got {s:?} {:?}",
                images.kind()
            ),
        });
    }
    Ok(())
}

/// The message of a caught panic (`panic!` payloads are a `String` or a `&str`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into())
}

impl Teacher for VitTeacher {
    fn name(&self) -> &str {
        &self.spec.name
    }

    fn resolution(&self) -> (i64, i64) {
        self.spec.resolution
    }

    fn grid(&self) -> (i64, i64) {
        self.model.shape.grid
    }

    fn dim(&self) -> i64 {
        self.model.shape.width
    }

    fn normalization(&self) -> Option<Normalization> {
        Some(self.norm)
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "family": self.family.name(),
            "layout": self.layout.as_str(),
            "weights": self.spec.weights.as_ref().map(|p| p.display().to_string()),
            "weights_sha256": self.weights_sha256,
            "model_config": self.config.source.as_ref().map(|p| p.display().to_string()),
            "random_weights": self
                .config
                .raw
                .get("note")
                .and_then(|n| n.as_str())
                .is_some_and(|n| n == crate::random::RANDOM_NOTE),
            "architecture": self.model.shape,
            "resolution": [self.spec.resolution.0, self.spec.resolution.1],
            "patch_size": self.spec.patch_size,
            "normalization": self.norm,
            "dtype": format!("{:?}", self.spec.kind),
            "output": "forward_features after the final LayerNorm, prefix tokens dropped",
        })
    }

    fn features(&self, images: &Tensor) -> Result<Tensor, TeacherError> {
        check_batch(&self.spec.name, images, self.spec.resolution)?;
        guarded(&self.spec.name, || {
            tch::no_grad(|| {
                let x = normalize_images(images, self.norm, self.spec.device, self.spec.kind);
                self.model
                    .patch_tokens(&x)
                    .to_kind(Kind::Float)
                    .to_device(Device::Cpu)
            })
        })
    }
}
