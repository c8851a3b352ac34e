//! The GPU run (`benches/gpu/run.sh`, issue 15) dry-run on the CPU, as CI runs it: every
//! part succeeds and its figures come out in `gpu.json`:
//!
//! * parity: every fixture network on the "device" (the CPU again) equal to the CPU;
//! * distributed: one process through the collective layer trains exactly as one without;
//! * sit: a training step rate and a sampling rate;
//! * eval: Inception features/s, a finite 50K-style FID, CPU-vs-device metrics equal.

#[test]
fn the_gpu_run_dry_runs() {
    let dir = tempfile::tempdir().unwrap();
    let r = maetok_e2e::dry_run_gpu_script("run", "gpu", dir.path());
    for part in ["env", "parity", "distributed", "sit", "eval"] {
        assert_eq!(r["parts"][part], "ok", "{part}: {r}");
    }
    assert!(r["env"].as_str().unwrap().contains("libtorch"), "{r}");
    assert_eq!(r["parity"]["pass"], true, "{r}");
    for m in [
        "maetok_encode",
        "maetok_decode",
        "dinov2_teacher",
        "sit",
        "lightningdit",
        "inception",
    ] {
        assert_eq!(
            r["parity"]["relative_error"][m].as_f64(),
            Some(0.0),
            "{m}: {r}"
        );
    }

    let d = &r["distributed"];
    assert_eq!(d["weights_rel_diff_layer_vs_none"], 0.0, "{d}");
    assert!(
        d["allreduce"]["seconds_per_step"].as_f64().unwrap() > 0.0,
        "{d}"
    );

    let s = &r["sit"];
    for part in ["latents", "train-fp32", "sample"] {
        assert_eq!(s["parts"][part], "ok", "{s}");
    }
    assert!(
        s["train_fp32"]["images_per_s"].as_f64().unwrap() > 0.0,
        "{s}"
    );
    assert!(s["sample"]["images_per_s"].as_f64().unwrap() > 0.0, "{s}");

    let e = &r["eval"];
    for part in ["inception", "inputs", "eval-cpu"] {
        assert_eq!(e["parts"][part], "ok", "{e}");
    }
    assert!(
        e["inception"]["images_per_s"].as_f64().unwrap() > 0.0,
        "{e}"
    );
    assert!(e["inception"]["fid"].as_f64().unwrap().is_finite(), "{e}");
    assert_eq!(e["cpu_vs_device"]["fid"]["rel"].as_f64(), Some(0.0), "{e}");
}
