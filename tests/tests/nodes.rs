//! Scale-out: nodes partition the input deterministically and name their shards per node;
//! `shards merge` builds one manifest over them whether the nodes shared a folder or not;
//! the merged dataset holds exactly the single-node job's samples. Slurm's environment
//! stands in for the flags.

use std::collections::BTreeSet;
use std::path::Path;

use arrow::array::AsArray;
use maetok_e2e::{batches, maetok, manifest, run, run_ok};
use maetok_pipeline::synth;

fn keys_of(dir: &Path) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for batch in batches(dir) {
        keys.extend(
            batch
                .column_by_name("key")
                .unwrap()
                .as_string::<i32>()
                .iter()
                .flatten()
                .map(str::to_string),
        );
    }
    keys
}

#[test]
fn nodes_partition_and_merge_back_to_the_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("folder");
    synth::write_imagefolder(&folder, 6).unwrap();
    let pattern = synth::write_webdataset(&tmp.path().join("wds"), 3, 5).unwrap();
    let (f, p) = (folder.to_str().unwrap(), pattern.as_str());
    let common = [
        "--input",
        f,
        "--input",
        p,
        "--shard-rows",
        "5",
        "--no-progress",
        "--threads",
        "2",
    ];

    let single = tmp.path().join("single");
    run_ok(
        &[
            &["preprocess", "--output", single.to_str().unwrap()][..],
            &common[..],
        ]
        .concat(),
    );
    let all = keys_of(&single);
    assert_eq!(all.len(), 24 + 15);

    // Nodes writing into one shared folder (node 1 through Slurm's variables).
    let shared = tmp.path().join("shared");
    let s = shared.to_str().unwrap();
    run_ok(
        &[
            &[
                "preprocess",
                "--output",
                s,
                "--node-rank",
                "0",
                "--num-nodes",
                "2",
            ][..],
            &common[..],
        ]
        .concat(),
    );
    let o = maetok()
        .args([&["preprocess", "--output", s][..], &common[..]].concat())
        .env("SLURM_PROCID", "1")
        .env("SLURM_NTASKS", "2")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let names: Vec<String> = std::fs::read_dir(&shared)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("shard-r000-"))
            && names.iter().any(|n| n.starts_with("shard-r001-")),
        "{names:?}"
    );
    let side: Vec<String> = std::fs::read_dir(shared.join("__maetok__"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        side.contains(&"manifest-r000.json".into()) && side.contains(&"manifest-r001.json".into()),
        "{side:?}"
    );
    // Before the merge, verify checks the node manifests.
    run_ok(&["shards", "verify", s]);
    run_ok(&["shards", "merge", "--output", s, s]);
    let merged = manifest(&shared, "manifest.json");
    assert_eq!(merged["nodes"], serde_json::json!([0, 1]));
    assert_eq!(merged["complete"], true);
    assert_eq!(
        keys_of(&shared),
        all,
        "the nodes together hold exactly the single-node samples"
    );
    let n0 = manifest(&shared, "manifest-r000.json")["stats"]["images"]
        .as_u64()
        .unwrap();
    let n1 = manifest(&shared, "manifest-r001.json")["stats"]["images"]
        .as_u64()
        .unwrap();
    assert!(n0 > 0 && n1 > 0 && n0 + n1 == all.len() as u64);
    run_ok(&["shards", "verify", s]);

    // Nodes writing into separate folders, merged into a third.
    let (a, b, m) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("merged"),
    );
    for (dir, rank) in [(&a, "0"), (&b, "1")] {
        run_ok(
            &[
                &[
                    "preprocess",
                    "--output",
                    dir.to_str().unwrap(),
                    "--node-rank",
                    rank,
                    "--num-nodes",
                    "2",
                ][..],
                &common[..],
            ]
            .concat(),
        );
    }
    // A node missing is an error that says which.
    let o = run(&[
        "shards",
        "merge",
        "--output",
        m.to_str().unwrap(),
        a.to_str().unwrap(),
    ]);
    assert!(
        !o.status.success()
            && String::from_utf8_lossy(&o.stderr).contains("nodes [1] of 2 are missing")
    );
    run_ok(&[
        "shards",
        "merge",
        "--output",
        m.to_str().unwrap(),
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    assert_eq!(keys_of(&m), all);
    run_ok(&["shards", "verify", m.to_str().unwrap()]);
    // Same partition either way: node shards are identical files.
    for name in ["shard-r000-00000.parquet", "shard-r001-00000.parquet"] {
        assert_eq!(
            std::fs::read(shared.join(name)).unwrap(),
            std::fs::read(m.join(name)).unwrap(),
            "{name}"
        );
    }
}
