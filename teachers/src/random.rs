//! Small random-weight teacher files in timm layout, for the demo and for trying the
//! pipeline without downloads. Their features carry no meaning; the file's safetensors
//! metadata and its `config.json` say so.

/// The note a random-weight teacher carries in its `config.json` (and weight metadata),
/// which the manifest records as `random_weights` so nobody trains on it unknowingly.
pub const RANDOM_NOTE: &str =
    "RANDOM WEIGHTS written by maetok for the demo; not a trained teacher";

use std::collections::HashMap;
use std::path::Path;

use tch::{Device, Kind, Tensor};

use crate::family::Family;

/// Shape of a random tower.
#[derive(Debug, Clone, Copy)]
pub struct RandomVit {
    pub family: Family,
    pub width: i64,
    pub depth: i64,
    pub heads: i64,
    /// Native patch size and grid (the file is "pretrained" at patch × grid pixels).
    pub patch: i64,
    pub grid: i64,
    /// MLP width [default: 4 × width; SigLIP so400m has 4304 for 1152].
    pub hidden: Option<i64>,
    pub seed: i64,
}

/// Write `model.safetensors` and `config.json` into `dir`.
pub fn write_random_vit(dir: &Path, v: &RandomVit) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    tch::manual_seed(v.seed);
    let opts = (Kind::Float, Device::Cpu);
    let c = v.width;
    let hidden = v.hidden.unwrap_or(4 * c);
    let mut t: Vec<(String, Tensor)> = Vec::new();
    let lin = |o: i64, i: i64| Tensor::randn([o, i], opts) / (i as f64).sqrt();
    let vec = |n: i64, base: f64| Tensor::randn([n], opts) * 0.2 + base;
    let cls = v.family != Family::Siglip;
    t.push((
        "patch_embed.proj.weight".into(),
        Tensor::randn([c, 3, v.patch, v.patch], opts) / ((3 * v.patch * v.patch) as f64).sqrt(),
    ));
    if v.family != Family::Clip {
        t.push(("patch_embed.proj.bias".into(), vec(c, 0.0)));
    }
    if cls {
        t.push(("cls_token".into(), Tensor::randn([1, 1, c], opts) * 0.5));
    }
    let rows = v.grid * v.grid + i64::from(cls);
    t.push(("pos_embed".into(), Tensor::randn([1, rows, c], opts) * 0.5));
    if v.family == Family::Clip {
        t.push(("norm_pre.weight".into(), vec(c, 1.0)));
        t.push(("norm_pre.bias".into(), vec(c, 0.0)));
    }
    for i in 0..v.depth {
        let b = format!("blocks.{i}");
        for (name, o, inp) in [
            ("attn.qkv", 3 * c, c),
            ("attn.proj", c, c),
            ("mlp.fc1", hidden, c),
            ("mlp.fc2", c, hidden),
        ] {
            t.push((format!("{b}.{name}.weight"), lin(o, inp)));
            t.push((format!("{b}.{name}.bias"), vec(o, 0.0)));
        }
        for n in ["norm1", "norm2"] {
            t.push((format!("{b}.{n}.weight"), vec(c, 1.0)));
            t.push((format!("{b}.{n}.bias"), vec(c, 0.0)));
        }
        if v.family == Family::Dinov2 {
            t.push((
                format!("{b}.ls1.gamma"),
                Tensor::rand([c], opts) * 0.5 + 0.5,
            ));
            t.push((
                format!("{b}.ls2.gamma"),
                Tensor::rand([c], opts) * 0.5 + 0.5,
            ));
        }
    }
    t.push(("norm.weight".into(), vec(c, 1.0)));
    t.push(("norm.bias".into(), vec(c, 0.0)));

    write_noted(&t, &dir.join("model.safetensors"))?;
    let note = RANDOM_NOTE;
    let config = serde_json::json!({
        "note": note,
        "family": v.family.name(),
        "model_args": {"num_heads": v.heads, "embed_dim": c, "depth": v.depth, "patch_size": v.patch},
    });
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_vec_pretty(&config).map_err(std::io::Error::other)?,
    )
}

/// `t` as an f32 safetensors file whose metadata carries [`RANDOM_NOTE`].
fn write_noted(t: &[(String, Tensor)], path: &Path) -> std::io::Result<()> {
    let data: Vec<(String, Vec<u8>, Vec<usize>)> = t
        .iter()
        .map(|(k, x)| {
            let n = x.numel();
            let mut f = vec![0f32; n];
            x.to_kind(Kind::Float)
                .contiguous()
                .view([-1])
                .copy_data(&mut f, n);
            let bytes = f.iter().flat_map(|v| v.to_le_bytes()).collect();
            (
                k.clone(),
                bytes,
                x.size().iter().map(|&d| d as usize).collect(),
            )
        })
        .collect();
    let views = data
        .iter()
        .map(|(k, b, s)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                .map(|v| (k.clone(), v))
                .map_err(std::io::Error::other)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let meta: HashMap<String, String> =
        [("maetok_note".to_string(), RANDOM_NOTE.to_string())].into();
    let tmp = maetok_nn::atomic::temp_path(path);
    safetensors::serialize_to_file(views, Some(meta), &tmp).map_err(std::io::Error::other)?;
    maetok_nn::atomic::commit(&tmp, path)
}

/// The FID Inception's state dict with every tensor drawn from portable SplitMix streams
/// (`maetok_nn::rng::fixture_*`; `tests/fixtures/gen/gen_inception.py` draws the same): the
/// i-th key in sorted order from stream `seed + i`; He-scaled convolutions, BatchNorm gains
/// 1 + 0.2 N, biases and means 0.2 N, variances 0.5 + U, the classifier N / √2048.
pub fn inception_state(seed: u64) -> Vec<(String, Tensor)> {
    use maetok_nn::rng::{fixture_normals, fixture_uniforms};
    crate::inception::Inception::layout()
        .into_iter()
        .enumerate()
        .map(|(i, (k, shape))| {
            let n = shape.iter().product::<i64>() as usize;
            let s = seed + i as u64;
            let normal = || Tensor::from_slice(&fixture_normals(s, n)).reshape(&shape);
            let v = if k.ends_with("conv.weight") {
                normal() * (2.0 / (shape[1] * shape[2] * shape[3]) as f64).sqrt()
            } else if k.ends_with("bn.weight") {
                normal() * 0.2 + 1.0
            } else if k.ends_with("running_var") {
                Tensor::from_slice(&fixture_uniforms(s, n)).reshape(&shape) + 0.5
            } else if k == "fc.weight" {
                normal() / (shape[1] as f64).sqrt()
            } else {
                // bn.bias, running_mean, fc.bias
                normal() * 0.2
            };
            (k, v)
        })
        .collect()
}

/// A random-weight FID Inception file (the demo's and the tests'): its metadata says so,
/// and `maetok eval` marks reports made with it.
pub fn write_random_inception(path: &Path, seed: u64) -> std::io::Result<()> {
    write_noted(&inception_state(seed), path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{build, TeacherSpec};

    #[test]
    fn random_towers_load_as_their_family() {
        let dir = tempfile::tempdir().unwrap();
        for (i, family) in [Family::Dinov2, Family::Siglip, Family::Clip]
            .into_iter()
            .enumerate()
        {
            let d = dir.path().join(family.name());
            let v = RandomVit {
                family,
                width: 32,
                depth: 1,
                heads: 2,
                patch: 14,
                grid: 4,
                hidden: None,
                seed: i as i64,
            };
            write_random_vit(&d, &v).unwrap();
            let mut spec = TeacherSpec::new(family.name(), Some(d.join("model.safetensors")));
            spec.resolution = (64, 64);
            let t = build(&spec).unwrap();
            assert_eq!((t.dim(), t.grid()), (32, (4, 4)));
            let x = Tensor::zeros([1, 64, 64, 3], (Kind::Uint8, Device::Cpu));
            assert_eq!(t.features(&x).unwrap().size(), [1, 16, 32]);
        }
    }
}
