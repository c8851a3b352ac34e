//! `scripts/convert_lpips.py` turns the pickled `.pth` files (torchvision's VGG16, the lpips
//! wheel's heads) into the safetensors files the LPIPS loss loads, tensor for tensor.

use std::collections::BTreeMap;

use maetok_e2e::fixtures;
use tch::Tensor;

fn read(p: std::path::PathBuf) -> BTreeMap<String, Tensor> {
    Tensor::read_safetensors(&p).unwrap().into_iter().collect()
}

#[test]
fn converter_writes_the_tensors_of_the_pth_files() {
    let python = std::env::var("MAETOK_PYTHON_BIN")
        .expect("MAETOK_PYTHON_BIN is not set: run the tests through `./run test`");
    let f = fixtures().join("lpips");
    let out = tempfile::tempdir().unwrap();
    let script = fixtures().join("../../scripts/convert_lpips.py");
    let o = std::process::Command::new(&python)
        .arg(&script)
        .arg("--vgg")
        .arg(f.join("vgg.pth"))
        .arg("--heads")
        .arg(f.join("heads.pth"))
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for (ours, theirs) in [
        ("vgg16.safetensors", "vgg.safetensors"),
        ("lpips_vgg_heads.safetensors", "heads.safetensors"),
    ] {
        let (a, b) = (read(out.path().join(ours)), read(f.join(theirs)));
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
        for (k, t) in &a {
            assert!(t.equal(&b[k]), "{ours}: {k}");
        }
    }
    // A file that is not VGG16 is refused with what was expected.
    let o = std::process::Command::new(&python)
        .arg(&script)
        .args(["--vgg"])
        .arg(f.join("heads.pth"))
        .arg("--heads")
        .arg(f.join("heads.pth"))
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("26 VGG16"));
}

#[test]
fn the_generic_converter_writes_a_state_dict_entry_with_prefixes_stripped() {
    let python = std::env::var("MAETOK_PYTHON_BIN")
        .expect("MAETOK_PYTHON_BIN is not set: run the tests through `./run test`");
    let tmp = tempfile::tempdir().unwrap();
    // A training checkpoint as the official code saves one: {"model": ..., "ema": ...}, DDP names.
    let pt = tmp.path().join("ckpt.pt");
    let make = format!(
        "import torch\nsd = {{'module.a.weight': torch.arange(6.).reshape(2, 3), 'module.n': torch.tensor(3)}}\n\
         torch.save({{'model': sd, 'ema': {{k: v * 2 for k, v in sd.items()}}, 'steps': 7}}, {:?})",
        pt.display().to_string()
    );
    let o = std::process::Command::new(&python)
        .arg("-c")
        .arg(make)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = tmp.path().join("model.safetensors");
    let script = fixtures().join("../../scripts/pth_to_safetensors.py");
    let o = std::process::Command::new(&python)
        .arg(&script)
        .arg(&pt)
        .arg(&out)
        .args(["--key", "ema", "--strip", "module."])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut w = maetok_nn::Weights::load(&out, "test").unwrap();
    let t = w.take("a.weight", &[2, 3]).unwrap();
    assert!(t.equal(&(Tensor::arange(6, (tch::Kind::Float, tch::Device::Cpu)).reshape([2, 3]) * 2)));
    assert!(!w.contains("n"), "integer buffers are dropped");
    let o = std::process::Command::new(&python)
        .arg(&script)
        .arg(&pt)
        .arg(&out)
        .args(["--key", "opt"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no `opt` entry"));
}
