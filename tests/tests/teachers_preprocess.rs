//! `maetok preprocess` with ViT teachers: the stored features are the teacher's output on the
//! stored views (f16, or int8 with per-token scales), the manifest records each teacher and
//! its weights, `verify` accepts the shards, and a changed weight file stops a resume.

use std::path::Path;

use arrow::array::{AsArray, FixedSizeListArray};
use arrow::datatypes::{Float16Type, Int16Type, Int8Type};
use maetok_e2e::{batches, fixtures, manifest, photo_folder, preprocess, run, run_ok};
use tch::Tensor;

/// Row `i` of a fixed-size list column as f32 (f16 values, or int8 × per-token scale).
fn row_f32(batch: &arrow::array::RecordBatch, name: &str, i: usize, dim: usize) -> Vec<f32> {
    let col = batch.column_by_name(name).unwrap().as_fixed_size_list();
    let v = col.value(i);
    if let Some(h) = v.as_primitive_opt::<Float16Type>() {
        return h.values().iter().map(|x| x.to_f32()).collect();
    }
    let q = v.as_primitive::<Int8Type>();
    let scales: &FixedSizeListArray = batch
        .column_by_name(&format!("{name}_scale"))
        .unwrap()
        .as_fixed_size_list();
    let s = scales.value(i);
    let s = s.as_primitive::<Float16Type>();
    q.values()
        .chunks(dim)
        .zip(s.values())
        .flat_map(|(t, s)| t.iter().map(move |&x| x as f32 * s.to_f32()))
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn stored_features_are_the_teachers_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = photo_folder(dir.path()).0;
    let dino = fixtures().join("teachers/dinov2_hf/model.safetensors");
    let siglip = fixtures().join("teachers/siglip_timm/model.safetensors");
    let out = dir.path().join("shards");
    let config = dir.path().join("job.toml");
    std::fs::write(
        &config,
        format!(
            "views = 2\nshard_rows = 6\n[[teachers]]\nname = \"dinov2\"\nweights = {:?}\nbatch_size = 3\n\
             [[teachers]]\nname = \"siglip\"\nweights = {:?}\nstorage = \"int8\"\nbatch_size = 5\n",
            dino, siglip
        ),
    )
    .unwrap();
    preprocess(
        input.to_str().unwrap(),
        &out,
        &["--config", config.to_str().unwrap()],
    );
    run_ok(&["shards", "verify", "--deep", out.to_str().unwrap()]);

    let m = manifest(&out, "manifest.json");
    let t = m["teachers"].as_array().unwrap();
    let names: Vec<&str> = t.iter().map(|x| x["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["hog", "dinov2", "siglip"]);
    assert_eq!(t[1]["encoding"], "f16");
    assert_eq!(t[2]["encoding"], "int8_per_token_scale");
    assert_eq!(t[1]["weights_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(t[1]["config"]["layout"], "hf_dinov2");

    // Reference: `teacher features` (f32) on the same ADM crops = view 0.
    let reference = |name: &str, weights: &Path| {
        let f = dir.path().join(format!("{name}.safetensors"));
        run_ok(&[
            "teacher",
            "features",
            "--teacher",
            name,
            "--weights",
            weights.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--output",
            f.to_str().unwrap(),
        ]);
        Tensor::read_safetensors(&f).unwrap().remove(0).1
    };
    let ref_dino = reference("dinov2", &dino);
    let ref_siglip = reference("siglip", &siglip);
    let mut image = 0i64;
    let mut worst_cos: f64 = 1.0;
    for b in batches(&out) {
        let views = b
            .column_by_name("view")
            .unwrap()
            .as_primitive::<Int16Type>();
        for i in 0..b.num_rows() {
            if views.value(i) != 0 {
                continue;
            }
            let want = Vec::<f32>::try_from(ref_dino.get(image).flatten(0, -1)).unwrap();
            let got = row_f32(&b, "dinov2", i, 32);
            let max = want.iter().fold(0f32, |m, x| m.max(x.abs()));
            let err = got
                .iter()
                .zip(&want)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                err <= max * 1e-3,
                "dinov2 image {image}: {err} vs max {max}"
            );
            let want = Vec::<f32>::try_from(ref_siglip.get(image).flatten(0, -1)).unwrap();
            let got = row_f32(&b, "siglip", i, 32);
            for (g, w) in got.chunks(32).zip(want.chunks(32)) {
                worst_cos = worst_cos.min(cosine(g, w));
            }
            image += 1;
        }
    }
    assert_eq!(image, 8);
    assert!(worst_cos > 0.999, "int8 per-token cosine {worst_cos}");
}

#[test]
fn changed_weights_stop_a_resume_and_bad_teachers_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let input = photo_folder(dir.path()).0;
    let weights = dir.path().join("model.safetensors");
    std::fs::copy(
        fixtures().join("teachers/dinov2_hf/model.safetensors"),
        &weights,
    )
    .unwrap();
    std::fs::copy(
        fixtures().join("teachers/dinov2_hf/config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let out = dir.path().join("shards");
    let teacher = format!("dinov2={}", weights.display());
    preprocess(
        input.to_str().unwrap(),
        &out,
        &["--teacher", &teacher, "--no-hog"],
    );
    // Same weights: nothing to do.
    preprocess(
        input.to_str().unwrap(),
        &out,
        &["--teacher", &teacher, "--no-hog"],
    );
    // Other weights under the same path: refused.
    let mut t = Tensor::read_safetensors(&weights).unwrap();
    t[0].1 = &t[0].1 + 1.0;
    Tensor::write_safetensors(&t, &weights).unwrap();
    let o = run(&[
        "preprocess",
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--teacher",
        &teacher,
        "--no-hog",
        "--no-progress",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("other teacher weights"),
        "{err}"
    );

    let o = run(&[
        "preprocess",
        "--input",
        input.to_str().unwrap(),
        "--output",
        dir.path().join("x").to_str().unwrap(),
        "--teacher",
        "dino=a.safetensors",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success()
            && err.contains("teachers.name")
            && err.contains("dinov2, siglip or clip"),
        "{err}"
    );
    let o = run(&[
        "preprocess",
        "--input",
        input.to_str().unwrap(),
        "--output",
        dir.path().join("y").to_str().unwrap(),
        "--teacher",
        "clip=/missing/model.safetensors",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success()
            && err.contains("/missing/model.safetensors")
            && err.contains("openai/clip-vit-base-patch16"),
        "{err}"
    );
}

/// Killed with SIGKILL mid-shard and between shards, a job with teachers resumes to the
/// bytes of an uninterrupted run (one thread vs two, batch sizes that do not divide the
/// shard). Teacher batches also never straddle a shard commit, so a resumed run feeds
/// libtorch the same batch shapes; with these tiny towers the CPU kernels give the same
/// bytes either way (checked by disabling that rule), so this test shows resume works with
/// teachers, not that the rule is needed — it guards larger models and other backends.
#[test]
fn killed_run_with_teachers_resumes_to_identical_output() {
    use maetok_e2e::{dataset_files, fingerprint, maetok};
    use std::os::unix::process::ExitStatusExt;

    let dir = tempfile::tempdir().unwrap();
    let input = photo_folder(dir.path()).0;
    let dino = format!(
        "dinov2={}",
        fixtures()
            .join("teachers/dinov2_hf/model.safetensors")
            .display()
    );
    let siglip = format!(
        "siglip={}",
        fixtures()
            .join("teachers/siglip_timm/model.safetensors")
            .display()
    );
    let config = dir.path().join("job.toml");
    std::fs::write(
        &config,
        "[[teachers]]\nname = \"siglip\"\nweights = \"x\"\nstorage = \"int8\"\nbatch_size = 4\n",
    )
    .unwrap();
    let args = |out: &Path, threads: &str| -> Vec<String> {
        [
            "preprocess",
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--teacher",
            &dino,
            "--teacher",
            &siglip,
            "--teacher-batch",
            "5",
            "--views",
            "2",
            "--shard-rows",
            "6",
            "--threads",
            threads,
            "--no-progress",
        ]
        .map(String::from)
        .to_vec()
    };
    let reference = dir.path().join("reference");
    let o = maetok().args(args(&reference, "1")).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let expected = fingerprint(&reference, dataset_files);
    assert!(expected.keys().filter(|k| k.ends_with(".parquet")).count() >= 3);
    for (i, kill) in ["image:5", "manifest_written:1", "shard_renamed:2"]
        .iter()
        .enumerate()
    {
        let out = dir.path().join(format!("killed-{i}"));
        let status = maetok()
            .args(args(&out, "2"))
            .env("MAETOK_KILL_AT", kill)
            .status()
            .unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{kill}");
        let o = maetok().args(args(&out, "2")).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(
            fingerprint(&out, dataset_files),
            expected,
            "after a kill at {kill}"
        );
    }
}

#[test]
fn a_random_weight_teacher_is_marked_in_the_manifest_and_by_inspect() {
    use maetok_teachers::family::Family;
    use maetok_teachers::random::{write_random_vit, RandomVit};
    let tmp = tempfile::tempdir().unwrap();
    let (input, _) = photo_folder(tmp.path());
    let weights = tmp.path().join("random-dinov2");
    write_random_vit(
        &weights,
        &RandomVit {
            family: Family::Dinov2,
            width: 32,
            depth: 1,
            heads: 2,
            patch: 14,
            grid: 4,
            hidden: None,
            seed: 0,
        },
    )
    .unwrap();
    let out = tmp.path().join("out");
    let teacher = format!("dinov2={}", weights.join("model.safetensors").display());
    preprocess(
        input.to_str().unwrap(),
        &out,
        &["--resolution", "64", "--teacher", &teacher],
    );
    let m = manifest(&out, "manifest.json");
    let t = &m["teachers"][1];
    assert_eq!(
        (t["name"].as_str(), t["config"]["random_weights"].as_bool()),
        (Some("dinov2"), Some(true))
    );
    assert_eq!(
        m["teachers"][0]["config"]["random_weights"].as_bool(),
        None,
        "HOG is not a ViT"
    );
    let o = run_ok(&["shards", "inspect", out.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("dinov2") && text.contains("RANDOM WEIGHTS"),
        "{text}"
    );
}
