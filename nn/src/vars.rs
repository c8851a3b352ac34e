//! The one place a tensor is named. A module's constructor asks a [`VarBuilder`] for each
//! of its tensors by a path relative to the module (`vb.pp("attn").pp("qkv")` then
//! `"weight"`), with its shape and its initialisation. The same constructor then serves
//! every use of the name:
//!
//! * **loading**: the builder takes the tensor from a weight file, checking its shape; a
//!   missing or mis-shaped key is an error naming the file and the key, and the keys left
//!   over after the build are returned, so a caller can refuse or report them;
//! * **initialising**: the builder draws the tensor ([`Init`]) in declaration order;
//! * **saving**: [`Vars::named`] lists every tensor under its name, in declaration order;
//! * **training**: [`Vars::params`] lists the trainable ones, by part (stage 2 trains the
//!   decoder part only), for the optimiser, the EMA and (next) the all-reduce;
//! * **moving**: [`Vars::to`] moves and casts every tensor in place (`set_data`), so the
//!   module structs, which hold handles to the same tensors, follow.
//!
//! This is candle's `VarBuilder` and tch's `nn::Path` idea, kept small: an ordered list of
//! named tensors tagged with their role, plus a source (a weight file or an initialiser).

use std::cell::RefCell;
use std::path::Path;

use tch::{Device, Kind, Tensor};

use crate::init::Init;
use crate::weights::{WeightError, Weights};

/// What a tensor is to training.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Trained (when its part is), averaged by the EMA, saved.
    Param,
    /// Saved and loaded, never trained: position buffers, running statistics, the frozen
    /// networks' weights, tensors of the released layout that the forward does not read.
    Buffer,
}

/// One named tensor.
#[derive(Debug)]
pub struct Var {
    pub name: String,
    pub tensor: Tensor,
    pub role: Role,
    /// The part of the model it belongs to (`encoder`, `decoder`, `aux.hog`, …): what a
    /// stage's trainable set is chosen by.
    pub part: String,
    /// Stays fp32 when the model is cast (RoPE frequencies, whose phases need the range).
    pub keep_f32: bool,
}

/// Every tensor of a built model, in declaration order.
#[derive(Debug, Default)]
pub struct Vars {
    vars: Vec<Var>,
}

impl Vars {
    pub fn iter(&self) -> impl Iterator<Item = &Var> {
        self.vars.iter()
    }

    pub fn len(&self) -> usize {
        self.vars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// Every tensor (buffers included) under its name: the state dict.
    pub fn named(&self) -> Vec<(String, Tensor)> {
        self.select(|_| true)
    }

    /// The trainable tensors of the parts `keep` accepts.
    pub fn params(&self, keep: impl Fn(&str) -> bool) -> Vec<(String, Tensor)> {
        self.select(|v| v.role == Role::Param && keep(&v.part))
    }

    fn select(&self, keep: impl Fn(&Var) -> bool) -> Vec<(String, Tensor)> {
        self.vars
            .iter()
            .filter(|v| keep(v))
            .map(|v| (v.name.clone(), v.tensor.shallow_clone()))
            .collect()
    }

    /// The tensor named `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.vars.iter().find(|v| v.name == name).map(|v| &v.tensor)
    }

    /// Move every tensor to `device` and cast the float ones to `kind` (those marked
    /// `keep_f32` stay fp32), in place: the modules holding these tensors follow.
    pub fn to(&mut self, device: Device, kind: Kind) {
        tch::no_grad(|| {
            for v in &mut self.vars {
                // Integer buffers (BatchNorm's step count) keep their dtype.
                let k = if !v.tensor.is_floating_point() {
                    v.tensor.kind()
                } else if v.keep_f32 {
                    Kind::Float
                } else {
                    kind
                };
                if v.tensor.device() != device || v.tensor.kind() != k {
                    let moved = v.tensor.to_device(device).to_kind(k);
                    v.tensor.set_data(&moved);
                }
            }
        })
    }

    /// Append another model's tensors (e.g. the auxiliary decoders to the autoencoder's).
    pub fn extend(&mut self, other: Vars) {
        self.vars.extend(other.vars);
    }

    /// Write the tensors of the parts `keep` accepts as fp32 safetensors, atomically.
    pub fn save(&self, path: &Path, keep: impl Fn(&str) -> bool) -> std::io::Result<()> {
        crate::weights::write_safetensors_atomic(&self.select(|v| keep(&v.part)), path)
    }
}

enum Source {
    Init,
    Load(Weights),
}

struct Building {
    source: Source,
    vars: Vec<Var>,
}

/// Hands out a module's tensors by path; see the module docs.
#[derive(Clone)]
pub struct VarBuilder<'a> {
    building: &'a RefCell<Building>,
    prefix: String,
    part: String,
}

/// Build a fresh model: `build` asks for each tensor, which is drawn from its [`Init`].
pub fn init<T, E>(build: impl FnOnce(VarBuilder) -> Result<T, E>) -> Result<(T, Vars), E> {
    let building = RefCell::new(Building {
        source: Source::Init,
        vars: Vec::new(),
    });
    let model = tch::no_grad(|| build(VarBuilder::root(&building)))?;
    Ok((
        model,
        Vars {
            vars: building.into_inner().vars,
        },
    ))
}

/// A model built from `weights`; also returns the keys the build did not take (sorted).
pub fn load<T, E>(
    weights: Weights,
    build: impl FnOnce(VarBuilder) -> Result<T, E>,
) -> Result<(T, Vars, Vec<String>), E> {
    let building = RefCell::new(Building {
        source: Source::Load(weights),
        vars: Vec::new(),
    });
    let model = tch::no_grad(|| build(VarBuilder::root(&building)))?;
    let b = building.into_inner();
    let left = match b.source {
        Source::Load(w) => w.leftover(),
        Source::Init => Vec::new(),
    };
    Ok((model, Vars { vars: b.vars }, left))
}

impl<'a> VarBuilder<'a> {
    fn root(building: &'a RefCell<Building>) -> Self {
        Self {
            building,
            prefix: String::new(),
            part: String::new(),
        }
    }

    /// The full name of `name` under this builder's path.
    pub fn path(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else if name.is_empty() {
            self.prefix.clone()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// The builder one level down (`"blocks.3"` or `3` both work).
    pub fn pp(&self, name: impl std::fmt::Display) -> Self {
        Self {
            building: self.building,
            prefix: self.path(&name.to_string()),
            part: self.part.clone(),
        }
    }

    /// The same path, with tensors declared from here on tagged as `part`.
    pub fn part(&self, part: &str) -> Self {
        Self {
            building: self.building,
            prefix: self.prefix.clone(),
            part: part.to_string(),
        }
    }

    /// True when building fresh weights rather than loading them.
    pub fn is_init(&self) -> bool {
        matches!(self.building.borrow().source, Source::Init)
    }

    /// A trainable tensor.
    pub fn param(&self, name: &str, shape: &[i64], init: Init) -> Result<Tensor, WeightError> {
        self.var(name, shape, Role::Param, false, || init.draw(shape))
    }

    /// A trainable tensor whose fresh value `init` computes (e.g. RoPE's random angles).
    pub fn param_with(
        &self,
        name: &str,
        shape: &[i64],
        init: impl FnOnce() -> Tensor,
    ) -> Result<Tensor, WeightError> {
        self.var(name, shape, Role::Param, false, init)
    }

    /// A trainable tensor that stays fp32 when the model is cast.
    pub fn param_f32_with(
        &self,
        name: &str,
        shape: &[i64],
        init: impl FnOnce() -> Tensor,
    ) -> Result<Tensor, WeightError> {
        self.var(name, shape, Role::Param, true, init)
    }

    /// A saved tensor that is never trained.
    pub fn buffer(&self, name: &str, shape: &[i64], init: Init) -> Result<Tensor, WeightError> {
        self.var(name, shape, Role::Buffer, false, || init.draw(shape))
    }

    /// A saved, never-trained tensor whose fresh value `init` computes.
    pub fn buffer_with(
        &self,
        name: &str,
        shape: &[i64],
        init: impl FnOnce() -> Tensor,
    ) -> Result<Tensor, WeightError> {
        self.var(name, shape, Role::Buffer, false, init)
    }

    /// A saved, never-trained tensor that stays fp32 when the model is cast (RoPE tables:
    /// their phases must not round to bf16).
    pub fn buffer_f32_with(
        &self,
        name: &str,
        shape: &[i64],
        init: impl FnOnce() -> Tensor,
    ) -> Result<Tensor, WeightError> {
        self.var(name, shape, Role::Buffer, true, init)
    }

    /// A tensor of the released layout the forward does not read (timm's unused
    /// `pos_embed` of a decoder, RoPE position buffers): kept so the model is written back
    /// whole. Loading takes it if the file has it, whatever its shape; a fresh build
    /// creates it when `init` is given.
    pub fn unused(
        &self,
        name: &str,
        init: Option<impl FnOnce() -> Tensor>,
    ) -> Result<Option<Tensor>, WeightError> {
        let full = self.path(name);
        let tensor = {
            let mut b = self.building.borrow_mut();
            match &mut b.source {
                Source::Load(w) => {
                    if !w.contains(&full) {
                        return Ok(None);
                    }
                    w.take_any(&full)?
                }
                Source::Init => match init {
                    Some(f) => f(),
                    None => return Ok(None),
                },
            }
        };
        // Kept fp32: position buffers must stay exact (bf16 holds integers only to 256).
        Ok(Some(self.push(full, tensor, Role::Buffer, true)))
    }

    /// A frozen tensor computed at load time from the file's (a position table resampled
    /// to another grid): registered under `name` so it moves with the model.
    pub fn derived(&self, name: &str, tensor: Tensor) -> Tensor {
        self.push(self.path(name), tensor, Role::Buffer, false)
    }

    /// Take `name` from the file as it is (shape unchecked): for loaders that read the
    /// architecture off a tensor and then transform it (see [`VarBuilder::derived`]).
    pub fn take_raw(&self, name: &str) -> Result<Tensor, WeightError> {
        let full = self.path(name);
        match &mut self.building.borrow_mut().source {
            Source::Load(w) => w.take_any(&full),
            Source::Init => Err(WeightError::Layout {
                path: "<fresh init>".into(),
                message: format!("`{full}` can only be loaded, not initialised"),
                hint: String::new(),
            }),
        }
    }

    fn var(
        &self,
        name: &str,
        shape: &[i64],
        role: Role,
        keep_f32: bool,
        init: impl FnOnce() -> Tensor,
    ) -> Result<Tensor, WeightError> {
        let full = self.path(name);
        let tensor = match &mut self.building.borrow_mut().source {
            Source::Load(w) => w.take(&full, shape)?,
            Source::Init => {
                let t = init();
                debug_assert_eq!(t.size(), shape, "init of `{full}`");
                t
            }
        };
        Ok(self.push(full, tensor, role, keep_f32))
    }

    fn push(&self, name: String, tensor: Tensor, role: Role, keep_f32: bool) -> Tensor {
        let mut b = self.building.borrow_mut();
        debug_assert!(
            b.vars.iter().all(|v| v.name != name),
            "`{name}` declared twice"
        );
        let handle = tensor.shallow_clone();
        b.vars.push(Var {
            name,
            tensor,
            role,
            part: self.part.clone(),
            keep_f32,
        });
        handle
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn build(vb: VarBuilder) -> Result<(Tensor, Tensor), WeightError> {
        let enc = vb.pp("enc").part("encoder");
        let w = enc.param("weight", &[2, 3], Init::Randn(1.0))?;
        let b = vb
            .pp("dec")
            .part("decoder")
            .buffer("bias", &[2], Init::Ones)?;
        Ok((w, b))
    }

    #[test]
    fn one_definition_serves_init_save_load_params_and_moves() {
        tch::manual_seed(0);
        let ((w, _), mut vars) = init(build).unwrap();
        let names: Vec<String> = vars.named().into_iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["enc.weight", "dec.bias"]);
        let params = vars.params(|p| p == "encoder");
        assert_eq!(params.len(), 1);
        assert!(
            vars.params(|p| p == "decoder").is_empty(),
            "buffers never train"
        );
        // Loading what was saved gives the same tensors and leaves nothing over.
        let sd: HashMap<String, Tensor> = vars.named().into_iter().collect();
        let weights = Weights::from_tensors(Path::new("t.safetensors"), "", sd);
        let ((w2, b2), _, left) = load(weights, build).unwrap();
        assert!(w2.equal(&w) && b2.equal(&Tensor::ones([2], (Kind::Float, Device::Cpu))));
        assert!(left.is_empty());
        // A move reaches the module's handle.
        vars.to(Device::Cpu, Kind::Double);
        assert_eq!(w.kind(), Kind::Double);
    }

    #[test]
    fn a_mis_shaped_or_missing_key_names_the_file_and_the_key() {
        let sd: HashMap<String, Tensor> = [(
            "enc.weight".to_string(),
            Tensor::zeros([3, 2], (Kind::Float, Device::Cpu)),
        )]
        .into();
        let weights = Weights::from_tensors(Path::new("m.safetensors"), "", sd);
        let err = load(weights, build).unwrap_err().to_string();
        assert!(
            err.contains("m.safetensors") && err.contains("enc.weight"),
            "{err}"
        );
        let weights = Weights::from_tensors(Path::new("m.safetensors"), "", HashMap::new());
        let err = load(weights, build).unwrap_err().to_string();
        assert!(err.contains("missing key `enc.weight`"), "{err}");
    }
}
