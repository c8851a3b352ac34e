//! A wrong or incomplete weight file fails at load with an error naming the file, the key as
//! the file spells it, the expected shape, and which file to download.

use std::path::{Path, PathBuf};

use maetok_teachers::{build, TeacherSpec};
use tch::{Kind, Tensor};

fn fixture(case: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/teachers")
        .join(case)
}

/// Copy a fixture's weights into `dir` after `edit`, plus its config.
fn edited(case: &str, dir: &Path, edit: impl FnOnce(&mut Vec<(String, Tensor)>)) -> PathBuf {
    let mut t = Tensor::read_safetensors(fixture(case).join("model.safetensors")).unwrap();
    edit(&mut t);
    let out = dir.join("model.safetensors");
    Tensor::write_safetensors(&t, &out).unwrap();
    for cfg in ["config.json", "open_clip_config.json"] {
        if fixture(case).join(cfg).exists() {
            std::fs::copy(fixture(case).join(cfg), dir.join(cfg)).unwrap();
        }
    }
    out
}

fn load_err(name: &str, weights: PathBuf) -> String {
    match build(&TeacherSpec::new(name, Some(weights))) {
        Ok(_) => panic!("loading should fail"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn missing_key_names_the_file_key_and_download() {
    let dir = tempfile::tempdir().unwrap();
    let key = "encoder.layer.1.attention.attention.key.weight";
    let w = edited("dinov2_hf", dir.path(), |t| t.retain(|(k, _)| k != key));
    let msg = load_err("dinov2", w);
    assert!(msg.contains(key), "{msg}");
    assert!(msg.contains("model.safetensors"), "{msg}");
    assert!(msg.contains("vit_large_patch14_dinov2.lvd142m"), "{msg}");
}

#[test]
fn wrong_shape_names_expected_shape() {
    let dir = tempfile::tempdir().unwrap();
    let w = edited("dinov2_timm", dir.path(), |t| {
        for (k, v) in t.iter_mut() {
            if k == "blocks.1.attn.proj.weight" {
                *v = Tensor::zeros([32, 16], (Kind::Float, tch::Device::Cpu));
            }
        }
    });
    let msg = load_err("dinov2", w);
    assert!(
        msg.contains("blocks.1.attn.proj.weight") && msg.contains("[32, 32]"),
        "{msg}"
    );
    // A renamed key is reported under the file's own name.
    let dir = tempfile::tempdir().unwrap();
    let w = edited("clip_hf", dir.path(), |t| {
        for (k, v) in t.iter_mut() {
            if k == "vision_model.encoder.layers.0.mlp.fc2.bias" {
                *v = Tensor::zeros([7], (Kind::Float, tch::Device::Cpu));
            }
        }
    });
    let msg = load_err("clip", w);
    assert!(
        msg.contains("vision_model.encoder.layers.0.mlp.fc2.bias"),
        "{msg}"
    );
}

#[test]
fn wrong_dtype_wrong_family_and_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let w = edited("siglip_timm", dir.path(), |t| {
        for (k, v) in t.iter_mut() {
            if k == "norm.weight" {
                *v = v.to_kind(Kind::Int);
            }
        }
    });
    let msg = load_err("siglip", w);
    assert!(
        msg.contains("norm.weight") && msg.contains("dtype"),
        "{msg}"
    );

    let msg = load_err("dinov2", fixture("siglip_hf").join("model.safetensors"));
    assert!(msg.contains("siglip") && msg.contains("dinov2"), "{msg}");

    let msg = load_err("clip", fixture("nope").join("model.safetensors"));
    assert!(
        msg.contains("no such file") && msg.contains("openai/clip-vit-base-patch16"),
        "{msg}"
    );

    let msg = load_err("dino", fixture("dinov2_hf").join("model.safetensors"));
    assert!(msg.contains("unknown teacher `dino`"), "{msg}");
}

#[test]
fn heads_default_from_width_and_config_overrides() {
    use maetok_teachers::Family;
    assert_eq!(Family::Dinov2.default_heads(1024), Some(16));
    assert_eq!(Family::Siglip.default_heads(1152), Some(16));
    assert_eq!(Family::Clip.default_heads(768), Some(12));
    assert_eq!(Family::Dinov2.default_heads(100), None);
    // Without a config, a 32-wide tower cannot be guessed (32 is not a multiple of 64).
    let dir = tempfile::tempdir().unwrap();
    let w = edited("dinov2_timm", dir.path(), |_| {});
    std::fs::remove_file(dir.path().join("config.json")).unwrap();
    let msg = load_err("dinov2", w);
    assert!(
        msg.contains("number of heads") && msg.contains("--model-config"),
        "{msg}"
    );
}
