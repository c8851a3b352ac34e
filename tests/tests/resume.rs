//! A preprocess job killed with SIGKILL at any point and rerun with the same arguments
//! finishes with shards, manifest and rejects log byte-identical to an uninterrupted run.
//!
//! Kill points are hit exactly through `MAETOK_KILL_AT` (the process SIGKILLs itself, see
//! `pipeline/src/preprocess/fault.rs`): before the first shard, mid-shard, between a shard's
//! rename and its manifest update, and between shards; plus kills from outside at arbitrary
//! moments, and two kills in a row. The reference run uses one thread and the others two,
//! so the output is also shown not to depend on scheduling.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

use maetok_e2e::{dataset_files, fingerprint, maetok, run_ok};
use maetok_pipeline::synth;

fn make_inputs(root: &Path) -> (String, String) {
    let folder = root.join("folder");
    synth::write_imagefolder(&folder, 10).unwrap();
    synth::write_bad_inputs(&folder.join(synth::CLASSES[1].0), "bad").unwrap();
    let pattern = synth::write_webdataset(&root.join("wds"), 2, 8).unwrap();
    (folder.display().to_string(), pattern)
}

fn args<'a>(folder: &'a str, pattern: &'a str, out: &'a str, threads: &'a str) -> Vec<&'a str> {
    vec![
        "preprocess",
        "--input",
        folder,
        "--input",
        pattern,
        "--output",
        out,
        "--views",
        "2",
        "--shard-rows",
        "8",
        "--row-group-rows",
        "4",
        "--threads",
        threads,
        "--no-progress",
    ]
}

#[test]
fn killed_runs_resume_to_identical_output() {
    let tmp = tempfile::tempdir().unwrap();
    let (folder, pattern) = make_inputs(tmp.path());
    let reference = tmp.path().join("reference");
    let reference_s = reference.display().to_string();
    run_ok(&args(&folder, &pattern, &reference_s, "1"));
    let expected = fingerprint(&reference, dataset_files);
    let shards = expected.keys().filter(|k| k.ends_with(".parquet")).count();
    assert!(
        shards >= 10,
        "need many shards to kill between, got {shards}"
    );

    let scenarios: &[&[&str]] = &[
        &["image:2"],                    // before the first shard
        &["image:7"],                    // mid-shard (shard 0 committed after image 4)
        &["shard_renamed:3"],            // shard renamed, manifest not yet updated
        &["manifest_written:5"],         // between shards
        &["image:5", "shard_renamed:2"], // killed twice
    ];
    for (i, kills) in scenarios.iter().enumerate() {
        let out = tmp.path().join(format!("killed-{i}"));
        let out_s = out.display().to_string();
        for kill in kills.iter() {
            let status = maetok()
                .args(args(&folder, &pattern, &out_s, "2"))
                .env("MAETOK_KILL_AT", kill)
                .status()
                .unwrap();
            assert_eq!(
                status.signal(),
                Some(libc::SIGKILL),
                "run with MAETOK_KILL_AT={kill} was not killed"
            );
            // Whatever is on disk now, nothing partial may carry a final name.
            for (name, _) in fingerprint(&out, |n| n.ends_with(".parquet")) {
                let bytes = std::fs::read(out.join(&name)).unwrap();
                assert_eq!(
                    &bytes[bytes.len() - 4..],
                    b"PAR1",
                    "{name} carries a final name but is incomplete"
                );
            }
        }
        run_ok(&args(&folder, &pattern, &out_s, "2"));
        assert_eq!(
            fingerprint(&out, dataset_files),
            expected,
            "scenario {kills:?} differs from the uninterrupted run"
        );
        let verify = run_ok(&["shards", "verify", &out_s]);
        assert!(String::from_utf8_lossy(&verify.stdout).contains("OK"));
    }
}

#[test]
fn kills_from_outside_at_arbitrary_moments() {
    let tmp = tempfile::tempdir().unwrap();
    let (folder, pattern) = make_inputs(tmp.path());
    let reference = tmp.path().join("reference");
    let reference_s = reference.display().to_string();
    run_ok(&args(&folder, &pattern, &reference_s, "2"));
    let expected = fingerprint(&reference, dataset_files);

    let out = tmp.path().join("killed");
    let out_s = out.display().to_string();
    // Several kills at growing delays; each rerun makes progress from where the last stopped.
    for delay_ms in [120u64, 250, 400, 600] {
        let mut child = maetok()
            .args(args(&folder, &pattern, &out_s, "2"))
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL; the run may also have finished already
        child.wait().unwrap();
    }
    run_ok(&args(&folder, &pattern, &out_s, "2"));
    assert_eq!(fingerprint(&out, dataset_files), expected);
}

#[test]
fn a_finished_job_is_not_redone_and_a_different_job_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (folder, pattern) = make_inputs(tmp.path());
    let out = tmp.path().join("out");
    let out_s = out.display().to_string();
    run_ok(&args(&folder, &pattern, &out_s, "2"));
    let before = fingerprint(&out, dataset_files);
    let again = run_ok(&args(&folder, &pattern, &out_s, "2"));
    assert!(String::from_utf8_lossy(&again.stdout).contains("already complete"));
    assert_eq!(fingerprint(&out, dataset_files), before);

    let mut other = args(&folder, &pattern, &out_s, "2");
    other.extend(["--seed", "7"]);
    let refused = maetok().args(&other).output().unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("different job"), "{err}");
    assert_eq!(
        fingerprint(&out, dataset_files),
        before,
        "a refused job must not touch the folder"
    );
}
