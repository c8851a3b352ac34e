//! Weight files as users download them (safetensors), read into a name → tensor map that
//! hands each tensor out once, checking its shape, and whose errors name the file, the key
//! as it is spelled in that file, the shape expected, and which file to download.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tch::{Kind, Tensor};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WeightError {
    #[error("{path}: cannot read weights: {message}. {hint}")]
    Read {
        path: PathBuf,
        message: String,
        hint: String,
    },
    #[error("{path}: missing key `{key}`{}. {hint}", expected_str(.expected))]
    Missing {
        path: PathBuf,
        key: String,
        expected: Option<Vec<i64>>,
        hint: String,
    },
    #[error("{path}: key `{key}` has shape {found:?}, expected {expected:?}. {hint}")]
    Shape {
        path: PathBuf,
        key: String,
        found: Vec<i64>,
        expected: Vec<i64>,
        hint: String,
    },
    #[error(
        "{path}: key `{key}` has dtype {found}, expected a float tensor (f32, f16 or bf16). {hint}"
    )]
    Dtype {
        path: PathBuf,
        key: String,
        found: String,
        hint: String,
    },
    #[error(
        "{path}: key `{key}` holds {count} non-finite values (NaN or ±Inf) of {total}: the file \
         is damaged or comes from a diverged run. {hint}"
    )]
    NonFinite {
        path: PathBuf,
        key: String,
        count: i64,
        total: i64,
        hint: String,
    },
    #[error("{path}: {message}. {hint}")]
    Layout {
        path: PathBuf,
        message: String,
        hint: String,
    },
}

fn expected_str(e: &Option<Vec<i64>>) -> String {
    e.as_ref()
        .map(|s| format!(" (expected shape {s:?})"))
        .unwrap_or_default()
}

/// A weight file's tensors (fp32 on the CPU), plus where each came from.
#[derive(Debug)]
pub struct Weights {
    path: PathBuf,
    /// Which file to get when this one is wrong (shown in every error).
    hint: String,
    tensors: HashMap<String, Tensor>,
    /// For tensors renamed by a layout converter: the key(s) as spelled in the file.
    origin: HashMap<String, String>,
}

impl Weights {
    /// Read a `.safetensors` file. Floating tensors of any width become fp32.
    pub fn load(path: &Path, hint: &str) -> Result<Self, WeightError> {
        let read_err = |message: String| WeightError::Read {
            path: path.to_path_buf(),
            message,
            hint: hint.to_string(),
        };
        if !path.is_file() {
            return Err(read_err("no such file".into()));
        }
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if ext != "safetensors" {
            return Err(read_err(format!(
                "only .safetensors files are read (got .{ext}); convert pickled checkpoints with \
                 `scripts/pth_to_safetensors.py`"
            )));
        }
        let list =
            tch::no_grad(|| Tensor::read_safetensors(path)).map_err(|e| read_err(e.to_string()))?;
        let mut tensors = HashMap::with_capacity(list.len());
        for (key, t) in list {
            match t.kind() {
                Kind::Float => {}
                Kind::Half | Kind::BFloat16 | Kind::Double => {}
                other => {
                    // Integer buffers (e.g. HF `position_ids`) are never weights we read.
                    if key.ends_with("position_ids") || key.ends_with("num_batches_tracked") {
                        continue;
                    }
                    return Err(WeightError::Dtype {
                        path: path.to_path_buf(),
                        key,
                        found: format!("{other:?}"),
                        hint: hint.to_string(),
                    });
                }
            }
            let t = t.to_kind(Kind::Float);
            // A NaN weight turns every output into NaN without a word downstream (features,
            // reconstructions, latents): refuse it here, naming the tensor.
            let bad = non_finite_count(&t).int64_value(&[]);
            if bad > 0 {
                return Err(WeightError::NonFinite {
                    path: path.to_path_buf(),
                    key,
                    count: bad,
                    total: t.numel() as i64,
                    hint: hint.to_string(),
                });
            }
            tensors.insert(key, t);
        }
        Ok(Self {
            path: path.to_path_buf(),
            hint: hint.to_string(),
            tensors,
            origin: HashMap::new(),
        })
    }

    /// Build from tensors already in memory (tests, converters).
    pub fn from_tensors(path: &Path, hint: &str, tensors: HashMap<String, Tensor>) -> Self {
        Self {
            path: path.to_path_buf(),
            hint: hint.to_string(),
            tensors,
            origin: HashMap::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn hint(&self) -> &str {
        &self.hint
    }

    pub fn contains(&self, key: &str) -> bool {
        self.tensors.contains_key(key)
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.tensors.keys()
    }

    pub fn shape(&self, key: &str) -> Option<Vec<i64>> {
        self.tensors.get(key).map(|t| t.size())
    }

    /// The key as the user's file spells it.
    pub fn origin_of(&self, key: &str) -> String {
        self.origin
            .get(key)
            .cloned()
            .unwrap_or_else(|| key.to_string())
    }

    /// Remove and return a tensor of any shape.
    pub fn take_any(&mut self, key: &str) -> Result<Tensor, WeightError> {
        self.tensors
            .remove(key)
            .ok_or_else(|| self.missing(key, None))
    }

    /// Remove and return a tensor, checking its shape.
    pub fn take(&mut self, key: &str, expected: &[i64]) -> Result<Tensor, WeightError> {
        let t = self
            .tensors
            .remove(key)
            .ok_or_else(|| self.missing(key, Some(expected)))?;
        self.take_shaped(t, key, expected)
    }

    /// Check the shape of a tensor already taken with [`Weights::take_any`] (whose size
    /// decided the expectation), with the same error as [`Weights::take`].
    pub fn take_shaped(
        &self,
        t: Tensor,
        key: &str,
        expected: &[i64],
    ) -> Result<Tensor, WeightError> {
        if t.size() != expected {
            return Err(WeightError::Shape {
                path: self.path.clone(),
                key: self.origin_of(key),
                found: t.size(),
                expected: expected.to_vec(),
                hint: self.hint.clone(),
            });
        }
        Ok(t)
    }

    /// Remove and return a tensor if present (shape-checked).
    pub fn take_opt(&mut self, key: &str, expected: &[i64]) -> Result<Option<Tensor>, WeightError> {
        if self.contains(key) {
            self.take(key, expected).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Put a tensor under a new (canonical) name, remembering the file's name(s) for it.
    pub fn insert(&mut self, key: &str, t: Tensor, origin: &str) {
        self.origin.insert(key.to_string(), origin.to_string());
        self.tensors.insert(key.to_string(), t);
    }

    /// Rename `from` to `to`; false when `from` is absent.
    pub fn rename(&mut self, from: &str, to: &str) -> bool {
        match self.tensors.remove(from) {
            Some(t) => {
                let origin = self.origin_of(from);
                self.insert(to, t, &origin);
                true
            }
            None => false,
        }
    }

    pub fn missing(&self, key: &str, expected: Option<&[i64]>) -> WeightError {
        WeightError::Missing {
            path: self.path.clone(),
            key: self.origin_of(key),
            expected: expected.map(|e| e.to_vec()),
            hint: self.hint.clone(),
        }
    }

    pub fn layout_error(&self, message: impl Into<String>) -> WeightError {
        WeightError::Layout {
            path: self.path.clone(),
            message: message.into(),
            hint: self.hint.clone(),
        }
    }

    /// Keys whose name starts with `prefix`, removed (e.g. a text tower we do not use).
    pub fn drop_prefix(&mut self, prefix: &str) -> usize {
        let before = self.tensors.len();
        self.tensors.retain(|k, _| !k.starts_with(prefix));
        before - self.tensors.len()
    }

    /// Strip `prefix` from every key that has it (e.g. `vision_model.`).
    pub fn strip_prefix(&mut self, prefix: &str) {
        let keys: Vec<String> = self
            .tensors
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        for k in keys {
            self.rename(&k, &k[prefix.len()..]);
        }
    }

    /// Highest `N + 1` over keys `{prefix}N.…` (the depth of a block list).
    pub fn count_indexed(&self, prefix: &str) -> i64 {
        self.tensors
            .keys()
            .filter_map(|k| {
                k.strip_prefix(prefix)?
                    .split('.')
                    .next()?
                    .parse::<i64>()
                    .ok()
            })
            .map(|i| i + 1)
            .max()
            .unwrap_or(0)
    }

    /// The keys left after a model took what it needs, sorted (for a warning).
    pub fn leftover(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.tensors.keys().cloned().collect();
        keys.sort();
        keys
    }
}

/// sha256 of a file, hex, for manifests.
pub fn file_sha256(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Write `tensors` as fp32 on the CPU to `path` through a temporary name in the same folder,
/// so a reader sees the old file or the whole new one, never a part.
/// How many values of `t` are NaN or ±Inf: a 0-d i64 tensor on `t`'s device, so many can
/// be reduced before one read (one sync on a GPU).
pub fn non_finite_count(t: &Tensor) -> Tensor {
    t.isfinite().logical_not().sum(Kind::Int64)
}

pub fn write_safetensors_atomic(tensors: &[(String, Tensor)], path: &Path) -> std::io::Result<()> {
    let tensors: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(k, t)| {
            (
                k.clone(),
                t.detach()
                    .to_kind(Kind::Float)
                    .to_device(tch::Device::Cpu)
                    .contiguous(),
            )
        })
        .collect();
    let tmp = crate::atomic::temp_path(path);
    Tensor::write_safetensors(&tensors, &tmp).map_err(std::io::Error::other)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    crate::atomic::commit(&tmp, path)
}
