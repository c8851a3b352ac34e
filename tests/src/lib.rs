//! Helpers for the end-to-end tests: find and run the `maetok` binary, fingerprint output
//! folders.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

pub mod ranks;

/// The `maetok` binary of this build: `$MAETOK_BIN`, else next to the test executable's
/// `deps/` folder (`target/<profile>/maetok`, which `./run test` builds first).
pub fn maetok_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("MAETOK_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let bin = profile_dir.join("maetok");
    assert!(
        bin.exists(),
        "{} not found: build it first (`./run test` does) or set MAETOK_BIN",
        bin.display()
    );
    bin
}

/// A `maetok` command with quiet logs.
pub fn maetok() -> Command {
    let mut c = Command::new(maetok_bin());
    c.env("MAETOK_LOG", "warn");
    c
}

/// Runs `maetok args...` and returns its output.
pub fn run(args: &[&str]) -> Output {
    maetok().args(args).output().expect("spawn maetok")
}

/// Runs `maetok args...`, asserting that it fails with exit status 1 (an error) or 2 (a
/// usage error from the argument parser), not a panic (101) or a signal, and that stderr
/// contains each of `needles`.
pub fn fails_naming(args: &[&str], needles: &[&str]) -> Output {
    let o = run(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        matches!(o.status.code(), Some(1 | 2)),
        "maetok {args:?}: expected exit status 1 (an error), got {:?}:\n{err}",
        o.status
    );
    assert!(
        !err.contains("panicked"),
        "maetok {args:?} panicked:\n{err}"
    );
    for n in needles {
        assert!(
            err.contains(n),
            "maetok {args:?}: error lacks {n:?}:\n{err}"
        );
    }
    o
}

/// Runs and asserts success, printing the output on failure.
pub fn run_ok(args: &[&str]) -> Output {
    let out = run(args);
    assert!(
        out.status.success(),
        "maetok {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `maetok preprocess --input INPUT --output OUT EXTRA... --no-progress`, asserting
/// success.
pub fn preprocess(input: &str, out: &Path, extra: &[&str]) -> Output {
    let out = out.to_str().expect("UTF-8 path");
    let mut args = vec!["preprocess", "--input", input, "--output", out];
    args.extend_from_slice(extra);
    args.push("--no-progress");
    run_ok(&args)
}

/// The synthetic ImageFolder (`per_class` images per class) under `dir/f`, preprocessed into
/// `dir/shards` with `extra` options; returns the shard folder.
pub fn synth_shards(dir: &Path, per_class: usize, extra: &[&str]) -> PathBuf {
    let folder = maetok_pipeline::synth::write_imagefolder(&dir.join("f"), per_class)
        .expect("writing the synthetic ImageFolder");
    let out = dir.join("shards");
    preprocess(folder.to_str().expect("UTF-8 path"), &out, extra);
    out
}

/// sha256 of every regular file in `dir` and its `__maetok__/` sidecar folder whose name
/// passes `keep`, by path relative to `dir`.
pub fn fingerprint(dir: &Path, keep: impl Fn(&str) -> bool) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let side = dir.join(maetok_pipeline::shard::SIDECAR);
    for (d, prefix) in [
        (dir.to_path_buf(), String::new()),
        (side, format!("{}/", maetok_pipeline::shard::SIDECAR)),
    ] {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().unwrap().is_file() && keep(&name) {
                out.insert(
                    format!("{prefix}{name}"),
                    hex::encode(Sha256::digest(std::fs::read(e.path()).unwrap())),
                );
            }
        }
    }
    out
}

/// sha256 of every regular file under `dir`, subfolders included, by relative path.
pub fn fingerprint_tree(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir") {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                let rel = e
                    .path()
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(
                    rel,
                    hex::encode(Sha256::digest(std::fs::read(e.path()).unwrap())),
                );
            }
        }
    }
    out
}

/// The files that define a dataset's content: shards, manifests, rejects logs.
pub fn dataset_files(name: &str) -> bool {
    name.ends_with(".parquet") || name.starts_with("manifest") || name.starts_with("rejects")
}

/// Appends a file member `name` holding `data` to a tar being written.
pub fn tar_member(b: &mut tar::Builder<std::fs::File>, name: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, name, data).expect("tar member");
}

/// JPEG bytes of synthetic sample `i` of class `class`.
pub fn jpeg(class: usize, i: usize) -> Vec<u8> {
    maetok_pipeline::synth::encode(&maetok_pipeline::synth::sample(class, i), 0).0
}

/// A parsed JSON file.
pub fn json_file(path: &Path) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Parsed `manifest.json` (or another manifest file, e.g. `manifest-r001.json`) of the
/// shard folder `dir`, from its `__maetok__/` sidecar folder.
pub fn manifest(dir: &Path, name: &str) -> serde_json::Value {
    json_file(&dir.join(maetok_pipeline::shard::SIDECAR).join(name))
}

/// Every record batch of every shard a folder's `manifest.json` lists, in order (read
/// through the pipeline's shard reader).
pub fn batches(dir: &Path) -> Vec<arrow::array::RecordBatch> {
    let folder = maetok_pipeline::shard::reader::ShardFolder::open(dir).expect("shard folder");
    folder
        .read_all(None)
        .map(|rows| rows.expect("shard rows").record_batch().clone())
        .collect()
}

/// The committed fixtures folder (`tests/fixtures`).
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// A folder `dir/images` holding copies of the fixture photographs (JPEGs only, not their
/// reference crops); returns it and the photographs' stems, sorted.
pub fn photo_folder(dir: &Path) -> (PathBuf, Vec<String>) {
    let input = dir.join("images");
    std::fs::create_dir(&input).expect("create images folder");
    let mut stems = Vec::new();
    for e in std::fs::read_dir(fixtures().join("photos")).expect("fixture photos") {
        let p = e.expect("dir entry").path();
        if p.extension().is_some_and(|x| x == "jpg") {
            std::fs::copy(&p, input.join(p.file_name().expect("name"))).expect("copy photo");
            stems.push(p.file_stem().expect("stem").to_string_lossy().into_owned());
        }
    }
    stems.sort();
    (input, stems)
}

/// Runs `benches/gpu/{script}.sh --dry-run` with its output in `out` (the built binary, the
/// project's Python as `TORCH_PYTHON`, the ranks' environment), asserts it succeeded
/// (showing its log `{name}.log` if not) and returns `out/{name}.json`.
pub fn dry_run_gpu_script(script: &str, name: &str, out: &Path) -> serde_json::Value {
    let script = fixtures().join(format!("../../benches/gpu/{script}.sh"));
    let mut c = Command::new("bash");
    c.arg(&script)
        .arg("--dry-run")
        .env("OUT", out)
        .env("MAETOK_BIN", maetok_bin())
        .envs(ranks::ENV);
    if let Some(py) = std::env::var_os("MAETOK_PYTHON_BIN") {
        c.env("TORCH_PYTHON", py);
    }
    let o = c.output().expect("spawn bash");
    assert!(
        o.status.success(),
        "{}\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
        std::fs::read_to_string(out.join(format!("{name}.log"))).unwrap_or_default()
    );
    json_file(&out.join(format!("{name}.json")))
}
