//! `maetok eval generation` end to end (issue 14), on a random-weight FID Inception:
//!
//! * the report's FID, sFID, IS and precision/recall are the library's on the same features;
//! * a second run against the same reference reads its features from the cache, and a
//!   changed reference file misses it;
//! * samples as a folder of PNGs give the numbers of the same images in an `.npz`;
//! * a pytorch-fid statistics file (`np.savez_compressed(mu=…, sigma=…)`) as the reference
//!   gives the FID of the reference's images;
//! * the converter turns a pytorch-fid-layout `.pth` into a file the network loads.

use std::path::{Path, PathBuf};

use maetok_e2e::{json_file, run_ok};
use maetok_eval::features::{Extractor, ImageSet};
use maetok_eval::fid::Statistics;
use maetok_eval::inception_score::inception_score;
use maetok_eval::npz::ImageBatchWriter;
use maetok_eval::precision_recall::precision_recall;
use maetok_nn::rng::SplitMix;
use maetok_pipeline::image::png::{encode_png, PngCompression};
use maetok_pipeline::image::Rgb8;
use tch::Device;

/// `n` images of side 32: smooth colour ramps whose phase and tint come from `seed`.
fn images(n: usize, seed: u64, tint: f64) -> Vec<Vec<u8>> {
    images_of(32, n, seed, tint)
}

fn images_of(side: usize, n: usize, seed: u64, tint: f64) -> Vec<Vec<u8>> {
    let mut g = SplitMix::new(seed);
    (0..n)
        .map(|_| {
            let (a, b, c) = (g.uniform() * 6.0, g.uniform() * 6.0, g.uniform());
            let mut v = Vec::with_capacity(side * side * 3);
            for y in 0..side {
                for x in 0..side {
                    let s = ((x as f64 * 0.2 + a).sin() + (y as f64 * 0.3 + b).cos()) * 0.25 + 0.5;
                    for ch in 0..3 {
                        let t =
                            (s * (0.6 + 0.4 * ch as f64 * c) + tint * ch as f64).clamp(0.0, 1.0);
                        v.push((t * 255.0) as u8);
                    }
                }
            }
            v
        })
        .collect()
}

fn npz(path: &Path, imgs: &[Vec<u8>]) {
    let mut w = ImageBatchWriter::create(path, imgs.len(), 32, 32).unwrap();
    for i in imgs {
        w.push(i).unwrap();
    }
    w.finish().unwrap();
}

fn eval(
    dir: &Path,
    samples: &Path,
    reference: &Path,
    inception: &Path,
    out: &str,
) -> serde_json::Value {
    let p = |p: &Path| p.to_str().unwrap().to_string();
    let out = dir.join(out);
    run_ok(&[
        "eval",
        "generation",
        "--samples",
        &p(samples),
        "--reference",
        &p(reference),
        "--output",
        &p(&out),
        "--inception",
        &p(inception),
        "--cache",
        &p(&dir.join("cache")),
        "--batch",
        "8",
        "--split-size",
        "6",
    ]);
    for f in ["report.md", "is_splits.png", "samples.png"] {
        assert!(out.join(f).exists(), "{f}");
    }
    json_file(&out.join("report.json"))
}

fn close(a: &serde_json::Value, b: f64, what: &str) {
    let a = a.as_f64().unwrap_or_else(|| panic!("{what}: {a}"));
    assert!(
        (a - b).abs() <= 1e-6 * b.abs().max(1.0),
        "{what}: {a} vs {b}"
    );
}

#[test]
fn generation_metrics_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    // MAETOK_EVAL_KEEP=DIR keeps the reports and pictures there, to look at.
    let kept = std::env::var_os("MAETOK_EVAL_KEEP").map(PathBuf::from);
    let d = kept.as_deref().unwrap_or(dir.path());
    let inception = d.join("inception.safetensors");
    maetok_teachers::random::write_random_inception(&inception, 11).unwrap();
    let (s_imgs, r_imgs) = (images(12, 1, 0.0), images(16, 2, 0.15));
    let (samples, reference) = (d.join("samples.npz"), d.join("reference.npz"));
    npz(&samples, &s_imgs);
    npz(&reference, &r_imgs);

    let a = eval(d, &samples, &reference, &inception, "a");
    assert_eq!(a["reference"]["features_from_cache"], false);
    assert_eq!(a["inception"]["random_weights"], true);
    let md = std::fs::read_to_string(d.join("a/report.md")).unwrap();
    assert!(md.contains("RANDOM"), "{md}");

    // The library on the same images.
    let ext = Extractor::load(&inception, Device::Cpu, 5).unwrap();
    let sf = ext
        .extract(&ImageSet::open(&samples).unwrap(), |_, _| {})
        .unwrap();
    let rf = ext
        .extract(&ImageSet::open(&reference).unwrap(), |_, _| {})
        .unwrap();
    let st = |t: &tch::Tensor| Statistics::from_features(t).unwrap();
    let fid = st(&sf.pool).frechet_distance(&st(&rf.pool)).unwrap();
    let sfid = st(&sf.spatial).frechet_distance(&st(&rf.spatial)).unwrap();
    let (is, splits) = inception_score(&sf.logits, 6);
    let (p, r) = precision_recall(&rf.pool, &sf.pool);
    println!("FID {fid} sFID {sfid} IS {is} P {p} R {r}");
    close(&a["fid"], fid, "fid");
    close(&a["sfid"], sfid, "sfid");
    close(&a["is"], is, "is");
    assert_eq!(a["is_splits"].as_array().unwrap().len(), splits.len());
    close(&a["precision"], p, "precision");
    close(&a["recall"], r, "recall");
    assert!(fid > 0.0);

    // The cache: hit the second time; a changed reference misses.
    let b = eval(d, &samples, &reference, &inception, "b");
    assert_eq!(b["reference"]["features_from_cache"], true);
    close(&b["fid"], fid, "fid from the cache");
    let mut changed = r_imgs.clone();
    changed[0][0] ^= 1;
    let reference2 = d.join("reference2.npz");
    npz(&reference2, &changed);
    let c = eval(d, &samples, &reference2, &inception, "c");
    assert_eq!(c["reference"]["features_from_cache"], false);

    // Samples as PNG files in a folder.
    let folder = d.join("pngs");
    std::fs::create_dir_all(&folder).unwrap();
    for (i, img) in s_imgs.iter().enumerate() {
        let rgb = Rgb8 {
            width: 32,
            height: 32,
            data: img.clone(),
        };
        std::fs::write(
            folder.join(format!("{i:03}.png")),
            encode_png(&rgb, PngCompression::Fast),
        )
        .unwrap();
    }
    let e = eval(d, &folder, &reference, &inception, "e");
    close(&e["fid"], fid, "fid of the PNG folder");
    close(&e["is"], is, "is of the PNG folder");
    // The same PNGs in an ImageFolder (class subfolders, none directly in it).
    let classes = d.join("classes");
    for (i, f) in (0..s_imgs.len()).map(|i| (i, format!("{i:03}.png"))) {
        let sub = classes.join(if i < s_imgs.len() / 2 { "a" } else { "b" });
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::copy(folder.join(&f), sub.join(&f)).unwrap();
    }
    let e = eval(d, &classes, &reference, &inception, "e2");
    close(&e["fid"], fid, "fid of the ImageFolder");
    assert_eq!(e["samples"]["images"].as_u64(), Some(s_imgs.len() as u64));

    // A pytorch-fid statistics file (np.savez_compressed) as the reference.
    let stats = st(&rf.pool);
    let raw = |t: &tch::Tensor, name: &str| -> PathBuf {
        let v: Vec<f64> = Vec::try_from(t.flatten(0, -1)).unwrap();
        let p = d.join(name);
        std::fs::write(
            &p,
            v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>(),
        )
        .unwrap();
        p
    };
    let (mu, sigma) = (raw(&stats.mu, "mu.f64"), raw(&stats.sigma, "sigma.f64"));
    let py = std::env::var("MAETOK_PYTHON_BIN")
        .expect("MAETOK_PYTHON_BIN is not set: run the tests through `./run test`");
    let stats_file = d.join("stats.npz");
    let script = format!(
        "import numpy as np\nmu = np.fromfile({:?}, '<f8')\nsigma = np.fromfile({:?}, '<f8').reshape(len(mu), len(mu))\nnp.savez_compressed({:?}, mu=mu, sigma=sigma)\n",
        mu.to_str().unwrap(),
        sigma.to_str().unwrap(),
        stats_file.to_str().unwrap()
    );
    let o = std::process::Command::new(&py)
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let f = eval(d, &samples, &stats_file, &inception, "f");
    close(&f["fid"], fid, "fid against the statistics file");
    assert!(f["precision"].is_null() && f["sfid"].is_null());
}

/// `scripts/convert_inception.py` on a `.pth` in pytorch-fid's layout (BatchNorm step counts
/// included): the result loads, and a `.pth` missing a tensor is refused.
#[test]
fn the_converter_turns_a_pytorch_fid_pth_into_a_loadable_file() {
    let dir = tempfile::tempdir().unwrap();
    let layout: Vec<(String, Vec<i64>)> = maetok_teachers::inception::Inception::layout();
    let spec = serde_json::to_string(&layout).unwrap();
    let py = std::env::var("MAETOK_PYTHON_BIN")
        .expect("MAETOK_PYTHON_BIN is not set: run the tests through `./run test`");
    let pth = dir.path().join("pt_inception.pth");
    let script = format!(
        "import json, torch\nsd = {{}}\nfor k, s in json.loads({spec:?}):\n    sd[k] = torch.full(s, 0.5)\n    if k.endswith('bn.weight'):\n        sd[k[:-6] + 'num_batches_tracked'] = torch.tensor(0)\ntorch.save(sd, {:?})\ndel sd['fc.bias']\ntorch.save(sd, {:?})\n",
        pth.to_str().unwrap(),
        dir.path().join("short.pth").to_str().unwrap()
    );
    let o = std::process::Command::new(&py)
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = dir.path().join("inception.safetensors");
    let conv = |src: &Path, dst: &Path| {
        std::process::Command::new(&py)
            .arg(root.join("scripts/convert_inception.py"))
            .arg(src)
            .arg(dst)
            .output()
            .unwrap()
    };
    let o = conv(&pth, &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let net = maetok_teachers::inception::Inception::load(&out).unwrap();
    assert_eq!(net.vars().len(), 472);
    let o = conv(
        &dir.path().join("short.pth"),
        &dir.path().join("x.safetensors"),
    );
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("472"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `maetok eval tokenizer` on the 64-px fixture tokenizer: PSNR/SSIM are `maetok
/// reconstruct`'s, `--ssim-standard` switches SSIM's data range, and rFID is the FID of the
/// written reconstructions against the input images.
#[test]
fn tokenizer_metrics_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = maetok_e2e::fixtures().join("maetok/movq_64");
    let tok = d.join("tok");
    std::fs::create_dir_all(&tok).unwrap();
    std::fs::copy(src.join("model.safetensors"), tok.join("model.safetensors")).unwrap();
    let arch = json_file(&src.join("arch.json"));
    let mut cfg = json_file(&src.join("config.json"));
    cfg["enc_num_heads"] = arch["encoder"]["num_heads"].clone();
    cfg["dec_num_heads"] = arch["decoder"]["num_heads"].clone();
    std::fs::write(tok.join("config.json"), cfg.to_string()).unwrap();
    let input = d.join("in");
    std::fs::create_dir_all(&input).unwrap();
    for (i, img) in images_of(64, 10, 3, 0.1).into_iter().enumerate() {
        let rgb = Rgb8 {
            width: 64,
            height: 64,
            data: img,
        };
        std::fs::write(
            input.join(format!("{i:02}.png")),
            encode_png(&rgb, PngCompression::Fast),
        )
        .unwrap();
    }
    let inception = d.join("inception.safetensors");
    maetok_teachers::random::write_random_inception(&inception, 5).unwrap();
    let p = |p: &Path| p.to_str().unwrap().to_string();
    let run = |out: &str, extra: &[&str]| {
        let mut args = vec![
            "eval".to_string(),
            "tokenizer".into(),
            "--checkpoint".into(),
            p(&tok),
            "--input".into(),
            p(&input),
            "--output".into(),
            p(&d.join(out)),
            "--inception".into(),
            p(&inception),
            "--batch-size".into(),
            "4".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run_ok(&refs);
        json_file(&d.join(out).join("report.json"))
    };
    let a = run("a", &[]);
    for f in ["report.md", "grid.png"] {
        assert!(d.join("a").join(f).exists(), "{f}");
    }
    assert_eq!(a["images"], 10);
    run_ok(&[
        "reconstruct",
        "--checkpoint",
        &p(&tok),
        "--input",
        &p(&input),
        "--output",
        &p(&d.join("r")),
    ]);
    let r = json_file(&d.join("r/metrics.json"));
    close(&a["psnr"], r["psnr"].as_f64().unwrap(), "psnr");
    close(&a["ssim"], r["ssim"].as_f64().unwrap(), "ssim");
    let b = run("b", &["--ssim-standard"]);
    assert_eq!(b["ssim_data_range"], 1.0);
    assert_ne!(b["ssim"], a["ssim"]);

    let ext = Extractor::load(&inception, Device::Cpu, 4).unwrap();
    let f = |dir: &Path| {
        ext.extract(&ImageSet::open(dir).unwrap(), |_, _| {})
            .unwrap()
            .pool
    };
    let st = |t: &tch::Tensor| Statistics::from_features(t).unwrap();
    let rfid = st(&f(&d.join("a/images")))
        .frechet_distance(&st(&f(&input)))
        .unwrap();
    println!("rFID {rfid}");
    let got = a["rfid"].as_f64().unwrap();
    assert!(
        (got - rfid).abs() <= 1e-6 * rfid.max(1.0),
        "rfid {got} vs {rfid}"
    );
}

/// `maetok eval latents` on two latent folders: one whose latents carry their class (a
/// class mean plus noise) and one of pure noise. The probe finds the class in the first and
/// not in the second; every K gets a held-out NLL and a BIC, on one PCA dimension for both.
#[test]
fn latent_analysis_end_to_end() {
    use maetok_pipeline::shard::latent::LatentWriter;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let write = |name: &str, signal: f64| -> PathBuf {
        let out = d.join(name);
        let mut w =
            LatentWriter::create(&out, [8, 4], 100, serde_json::json!({"test": name})).unwrap();
        let mut g = SplitMix::new(signal.to_bits());
        let means: Vec<Vec<f64>> = (0..4)
            .map(|_| (0..32).map(|_| g.normal()).collect())
            .collect();
        for i in 0..400usize {
            let c = i % 4;
            let z: Vec<f32> = (0..32)
                .map(|j| (signal * means[c][j] + g.normal()) as f32)
                .collect();
            let zf = z.iter().rev().copied().collect();
            w.push(format!("k{i:04}"), Some(c as i32), z, zf).unwrap();
        }
        w.finish().unwrap();
        out
    };
    let (a, b) = (write("signal", 2.0), write("noise", 0.0));
    let out = d.join("out");
    let p = |p: &Path| p.to_str().unwrap().to_string();
    run_ok(&[
        "eval",
        "latents",
        "--latents",
        &p(&a),
        "--latents",
        &p(&b),
        "--output",
        &p(&out),
        "--k",
        "1,2,4,8",
    ]);
    for f in ["report.md", "nll_vs_k.png", "pca_spectrum.png"] {
        assert!(out.join(f).exists(), "{f}");
    }
    let r = json_file(&out.join("report.json"));
    let f = r["folders"].as_array().unwrap();
    let (sig, noise) = (&f[0], &f[1]);
    let acc = |v: &serde_json::Value| v["probe_accuracy"].as_f64().unwrap();
    println!("probe: signal {} noise {}", acc(sig), acc(noise));
    assert!(acc(sig) > 0.95, "{sig}");
    assert!(acc(noise) < 0.45, "{noise}");
    assert_eq!(sig["held_out_rows"], 80);
    let dims = r["pca_dims"].as_u64().unwrap();
    assert!(dims >= sig["pca_dims_for_ratio"].as_u64().unwrap());
    assert!(dims >= noise["pca_dims_for_ratio"].as_u64().unwrap());
    for folder in f {
        for k in ["1", "2", "4", "8"] {
            assert!(
                folder["nll_held_out"][k].as_f64().unwrap().is_finite(),
                "{folder}"
            );
            assert!(
                folder["bic_train"][k].as_f64().unwrap().is_finite(),
                "{folder}"
            );
        }
    }
    // Four well-separated classes: four components explain the signal folder better than one.
    let nll = |k: &str| sig["nll_held_out"][k].as_f64().unwrap();
    assert!(nll("4") < nll("1"), "{sig}");
}
