//! `maetok encode` / `maetok reconstruct` on a tiny MAETok checkpoint (official layout, from
//! `tests/fixtures/maetok/movq_64`) over a shard folder's stored views: the files written equal
//! the library's outputs on the same pixels, and the grid and metrics are there.

use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use maetok_e2e::{batches, fixtures, json_file, manifest, photo_folder, preprocess, run_ok};
use maetok_eval::reconstruction::to_u8;
use maetok_models::maetok::AeModel;
use tch::{Kind, Tensor};

/// The movq_64 checkpoint with its heads written into config.json (the tiny model re-uses
/// official timm names, whose head counts would be wrong for it).
fn checkpoint(dir: &Path) -> PathBuf {
    let src = fixtures().join("maetok/movq_64");
    let ckpt = dir.join("ckpt");
    std::fs::create_dir_all(&ckpt).unwrap();
    std::fs::copy(
        src.join("model.safetensors"),
        ckpt.join("model.safetensors"),
    )
    .unwrap();
    let arch = json_file(&src.join("arch.json"));
    let mut cfg = json_file(&src.join("config.json"));
    cfg["enc_num_heads"] = arch["encoder"]["num_heads"].clone();
    cfg["dec_num_heads"] = arch["decoder"]["num_heads"].clone();
    std::fs::write(ckpt.join("config.json"), cfg.to_string()).unwrap();
    ckpt
}

/// `maetok CMD --checkpoint CKPT --input INPUT --output OUTPUT EXTRA...`
fn args<'a>(
    cmd: &'a str,
    ckpt: &'a Path,
    input: &'a Path,
    output: &'a Path,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let path = |p: &'a Path| p.to_str().expect("UTF-8 path");
    let mut a = vec![
        cmd,
        "--checkpoint",
        path(ckpt),
        "--input",
        path(input),
        "--output",
        path(output),
    ];
    a.extend_from_slice(extra);
    a
}

#[test]
fn encode_and_reconstruct_a_shard_folder() {
    let dir = tempfile::tempdir().unwrap();
    let (input, _) = photo_folder(dir.path());
    let shards = dir.path().join("shards");
    preprocess(
        input.to_str().unwrap(),
        &shards,
        &["--resolution", "64", "--no-hog", "--views", "2"],
    );
    let ckpt = checkpoint(dir.path());
    let latents = dir.path().join("latents.safetensors");
    run_ok(&args(
        "encode",
        &ckpt,
        &shards,
        &latents,
        &["--batch-size", "3"],
    ));
    let out = dir.path().join("recon");
    run_ok(&args(
        "reconstruct",
        &ckpt,
        &shards,
        &out,
        &["--batch-size", "5"],
    ));

    // The library on the stored view-0 pixels.
    let model = AeModel::load(&ckpt).unwrap();
    let (mut keys, mut pixels) = (Vec::new(), Vec::new());
    for b in batches(&shards) {
        let key = b.column_by_name("key").unwrap().as_string::<i32>();
        let view = b
            .column_by_name("view")
            .unwrap()
            .as_primitive::<arrow::datatypes::Int16Type>();
        let png = b.column_by_name("image").unwrap().as_binary::<i32>();
        for i in 0..b.num_rows() {
            if view.value(i) == 0 && !png.is_null(i) {
                keys.push(key.value(i).to_string());
                pixels.push(image::load_from_memory(png.value(i)).unwrap().to_rgb8());
            }
        }
    }
    assert_eq!(keys.len(), 8);
    let bytes: Vec<u8> = pixels.iter().flat_map(|p| p.as_raw().clone()).collect();
    let x = Tensor::from_slice(&bytes)
        .reshape([8, 64, 64, 3])
        .permute([0, 3, 1, 2])
        .to_kind(Kind::Float)
        / 127.5
        - 1.0;
    let (z, y) = tch::no_grad(|| {
        let z = model.encode(&x, None);
        let y = model.decode(&z);
        (z, y)
    });

    let file = std::fs::read(&latents).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&file).unwrap();
    let stored_keys: Vec<String> =
        serde_json::from_str(&meta.metadata().as_ref().unwrap()["keys"]).unwrap();
    assert_eq!(stored_keys, keys);
    let got = Tensor::read_safetensors(&latents).unwrap().remove(0).1;
    assert_eq!(got.size(), [8, 8, 4]);
    assert!(f64::try_from((&got - &z).abs().max()).unwrap() < 1e-5);

    let y = y.clamp(-1.0, 1.0).permute([0, 2, 3, 1]).contiguous();
    let want: Vec<f32> = Vec::try_from(y.flatten(0, -1)).unwrap();
    for (i, key) in keys.iter().enumerate() {
        let rec = image::open(out.join("images").join(format!("{key}.png")))
            .unwrap()
            .to_rgb8();
        let mismatches = rec
            .as_raw()
            .iter()
            .zip(&want[i * 64 * 64 * 3..(i + 1) * 64 * 64 * 3])
            .filter(|(a, b)| (**a as i32 - to_u8(**b) as i32).abs() > 1)
            .count();
        assert_eq!(mismatches, 0, "{key}");
    }
    let grid = image::open(out.join("grid.png")).unwrap();
    // Eight 64-px columns and two rows (4-px gaps), right of the row labels.
    let label_w = maetok_trainer::viz::LABEL_W;
    assert_eq!(
        (grid.width(), grid.height()),
        (label_w + 8 * 68 + 4, 2 * 68 + 4)
    );
    let m = json_file(&out.join("metrics.json"));
    assert_eq!(m["images"], 8);
    assert!(m["psnr"].as_f64().unwrap().is_finite() && m["ssim"].as_f64().unwrap() <= 1.0);
    assert!(m["psnr_mean_colour_baseline"].as_f64().unwrap() > 5.0);

    // A folder output: latent shards with the flipped image's latent, mean/std, labels.
    let folder = dir.path().join("latent-shards");
    run_ok(&args(
        "encode",
        &ckpt,
        &shards,
        &folder,
        &["--batch-size", "3", "--shard-rows", "5", "--write-stats"],
    ));
    let m = manifest(&folder, "manifest.json");
    assert_eq!(
        (m["complete"].as_bool(), m["images"].as_u64()),
        (Some(true), Some(8))
    );
    // --write-stats put the measured statistics into the checkpoint's config.json, where
    // the official SiT scripts read them; every other field is kept.
    let cfg = json_file(&ckpt.join("config.json"));
    assert_eq!(cfg["vq_mean"], m["mean"]);
    assert_eq!(cfg["vq_std"], m["std"]);
    assert_eq!(
        (cfg["image_size"].as_i64(), cfg["enc_num_heads"].as_i64()),
        (Some(64), Some(2))
    );
    assert_eq!(m["shards"].as_array().unwrap().len(), 2);
    assert_eq!(m["latent_shape"], serde_json::json!([8, 4]));
    let zf = tch::no_grad(|| model.encode(&x.flip([3]), None));
    let (mut got_keys, mut lat, mut flip) = (Vec::new(), Vec::new(), Vec::new());
    let latents = maetok_pipeline::shard::latent::LatentFolder::open(&folder).unwrap();
    for b in latents.read_all() {
        let b = b.unwrap();
        for i in 0..b.len() {
            got_keys.push(b.key(i).unwrap().to_string());
            lat.extend_from_slice(b.latent(i).unwrap());
            flip.extend_from_slice(b.latent_flip(i).unwrap());
        }
    }
    assert_eq!(got_keys, keys);
    let lat = Tensor::from_slice(&lat).reshape([8, 8, 4]);
    let flip = Tensor::from_slice(&flip).reshape([8, 8, 4]);
    assert!(f64::try_from((&lat - &z).abs().max()).unwrap() < 1e-5);
    assert!(f64::try_from((&flip - &zf).abs().max()).unwrap() < 1e-5);
    let mean = f64::try_from(z.mean(Kind::Double)).unwrap();
    let std = f64::try_from(z.to_kind(Kind::Double).std(false)).unwrap();
    assert!((m["mean"].as_f64().unwrap() - mean).abs() < 1e-5, "{m}");
    assert!((m["std"].as_f64().unwrap() - std).abs() < 1e-5, "{m}");
    // pyarrow, pandas and DuckDB read the latent shards (ARCHITECTURE §4).
    let python = std::env::var("MAETOK_PYTHON_BIN")
        .expect("MAETOK_PYTHON_BIN is not set: run the tests through `./run test`");
    let script = r#"
import json, sys, os
import pyarrow.parquet as pq, pandas as pd, duckdb
d = sys.argv[1]
m = json.load(open(os.path.join(d, "__maetok__", "manifest.json")))
files = [os.path.join(d, s["file"]) for s in m["shards"]]
# The folder is one dataset: the sidecar folder is skipped.
assert pq.read_table(d).num_rows == sum(s["rows"] for s in m["shards"])
t = pq.read_table(files[0])
assert t.schema.field("latent").type.list_size == 32, t.schema
rows = sum(len(pd.read_parquet(f)) for f in files)
n = duckdb.sql(f"select count(*), avg(len(latent_flip)) from read_parquet({files!r})").fetchall()[0]
assert rows == m["images"] == n[0] and n[1] == 32, (rows, n)
print("ok", rows)
"#;
    let o = std::process::Command::new(&python)
        .args(["-c", script])
        .arg(&folder)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    // An existing latent folder is not overwritten.
    let o = maetok_e2e::run(&args("encode", &ckpt, &shards, &folder, &[]));
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("already holds"));
}
