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
    pub seed: i64,
}

/// Write `model.safetensors` and `config.json` into `dir`.
pub fn write_random_vit(dir: &Path, v: &RandomVit) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    tch::manual_seed(v.seed);
    let opts = (Kind::Float, Device::Cpu);
    let c = v.width;
    let hidden = 4 * c;
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

    let data: Vec<(String, Vec<u8>, Vec<usize>)> = t
        .iter()
        .map(|(k, x)| {
            let n = x.numel();
            let mut f = vec![0f32; n];
            x.contiguous().view([-1]).copy_data(&mut f, n);
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
    let note = RANDOM_NOTE;
    let meta: HashMap<String, String> = [("maetok_note".to_string(), note.to_string())].into();
    safetensors::serialize_to_file(views, Some(meta), &dir.join("model.safetensors"))
        .map_err(std::io::Error::other)?;
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
