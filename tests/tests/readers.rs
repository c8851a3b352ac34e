//! Shards are ordinary Parquet and a shard folder is one dataset: pyarrow, pandas and
//! DuckDB open the folder itself (the manifest and logs sit in `__maetok__/`, which they
//! skip) and read every shard with the column types of ARCHITECTURE §4; the stored images
//! and HOG round-trip. HF `datasets` is checked too when it is installed (it is not in the
//! project's environment). Uses the project's Python environment (`./run test` exports
//! `MAETOK_PYTHON_BIN`).

use maetok_e2e::preprocess;
use maetok_pipeline::synth;

const CHECK: &str = r#"
import io, json, sys
import duckdb, numpy as np, pandas as pd, pyarrow as pa, pyarrow.parquet as pq
from PIL import Image

root = sys.argv[1]
m = json.load(open(f"{root}/__maetok__/manifest.json"))
total = m["stats"]["rows"]
# The folder as one dataset, as each reader opens a folder.
assert pq.read_table(root).num_rows == total
assert pq.ParquetDataset(root).read().num_rows == total
assert len(pd.read_parquet(root)) == total
assert duckdb.sql(f"select count(*) from read_parquet('{root}/*.parquet')").fetchall()[0][0] == total
try:
    import datasets
except ImportError:
    datasets = None
if datasets is not None:
    ds = datasets.load_dataset("parquet", data_dir=root, split="train")
    assert len(ds) == total, len(ds)
    print("HF datasets opens the folder")
res = m["preprocess"]["resolution"]
tokens = (res // 16) ** 2
rows = 0
for s in m["shards"]:
    path = f"{root}/{s['file']}"
    t = pq.read_table(path)
    sch = t.schema
    assert sch.field("key").type == pa.string()
    assert sch.field("view").type == pa.int16()
    crop = sch.field("crop").type
    assert [(f.name, f.type) for f in crop] == [("left", pa.float32()), ("top", pa.float32()), ("width", pa.float32()), ("height", pa.float32()), ("flip", pa.bool_())], crop
    assert sch.field("label").type == pa.int32() and sch.field("label").nullable
    assert sch.field("caption").type == pa.string()
    assert sch.field("image").type == pa.binary()
    hog_t = sch.field("hog").type
    assert pa.types.is_fixed_size_list(hog_t) and hog_t.list_size == tokens * 108 and hog_t.value_type == pa.float16(), hog_t
    assert t.num_rows == s["rows"]
    hog = np.asarray(t.column("hog").combine_chunks().flatten()).reshape(t.num_rows, tokens, 108)
    assert np.isfinite(hog).all() and hog.min() >= 0 and hog.max() <= 1.0001
    norms = np.sqrt((hog.astype(np.float32).reshape(t.num_rows, tokens, 3, 9, 4) ** 2).sum(axis=3))
    assert np.all((np.abs(norms - 1) < 2e-3) | (norms < 1e-3)), "cells are unit-norm over bins (or empty)"
    for b in t.column("image").to_pylist()[:4]:
        im = Image.open(io.BytesIO(b)); assert im.size == (res, res) and im.mode == "RGB"
    df = pd.read_parquet(path)
    assert len(df) == s["rows"] and list(df.columns)[:6] == ["key", "view", "crop", "label", "caption", "image"]
    n = duckdb.sql(f"select count(*), count(distinct key), min(view), max(view) from read_parquet('{path}')").fetchall()[0]
    assert n[0] == s["rows"], n
    # Teacher columns: f16 (dinov2) and int8 + per-token f16 scale (siglip), 32-d tiny towers.
    for info in m["teachers"][1:]:
        name, dim = info["name"], info["dim"]
        ft = sch.field(name).type
        assert pa.types.is_fixed_size_list(ft) and ft.list_size == tokens * dim, ft
        raw = np.asarray(t.column(name).combine_chunks().flatten()).reshape(t.num_rows, tokens, dim)
        vals = raw.astype(np.float32)
        if info["encoding"] == "int8_per_token_scale":
            assert ft.value_type == pa.int8(), ft
            scale = np.asarray(t.column(name + "_scale").combine_chunks().flatten()).reshape(t.num_rows, tokens, 1)
            assert np.abs(raw).max() <= 127 and (scale > 0).all()
            vals = vals * scale.astype(np.float32)
        else:
            assert ft.value_type == pa.float16(), ft
        assert np.isfinite(vals).all() and np.abs(vals).max() > 0
        first = duckdb.sql(f"select {name}[1] from read_parquet('{path}') limit 1").fetchall()[0][0]
        assert abs(float(first) - float(raw[0, 0, 0])) < 1e-6, (name, first, raw[0, 0, 0])
    rows += t.num_rows
assert rows == m["stats"]["rows"]
print(f"pyarrow, pandas and duckdb read the folder and {len(m['shards'])} shards, {rows} rows")
"#;

#[test]
fn pyarrow_pandas_and_duckdb_read_every_shard() {
    let python = std::env::var("MAETOK_PYTHON_BIN")
        .expect("MAETOK_PYTHON_BIN is not set: run the tests through `./run test` (it sets up the Python environment)");
    let tmp = tempfile::tempdir().unwrap();
    let folder = synth::write_imagefolder(&tmp.path().join("f"), 5).unwrap();
    let out = tmp.path().join("out");
    let teachers = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/teachers");
    let (dino, siglip) = (
        format!(
            "dinov2={}",
            teachers.join("dinov2_hf/model.safetensors").display()
        ),
        format!(
            "siglip={}",
            teachers.join("siglip_hf/model.safetensors").display()
        ),
    );
    let config = tmp.path().join("job.toml");
    std::fs::write(
        &config,
        "[[teachers]]\nname = \"siglip\"\nweights = \"unused\"\nstorage = \"int8\"\n",
    )
    .unwrap();
    preprocess(
        folder.to_str().unwrap(),
        &out,
        &[
            "--config",
            config.to_str().unwrap(),
            "--views",
            "3",
            "--shard-rows",
            "16",
            "--resolution",
            "128",
            "--teacher",
            &dino,
            "--teacher",
            &siglip,
        ],
    );
    let o = std::process::Command::new(&python)
        .arg("-c")
        .arg(CHECK)
        .arg(&out)
        .output()
        .expect("run python");
    assert!(
        o.status.success(),
        "python readers failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    println!("{}", String::from_utf8_lossy(&o.stdout));
}

#[test]
fn folders_written_before_the_sidecar_folder_still_open() {
    let tmp = tempfile::tempdir().unwrap();
    let out = maetok_e2e::synth_shards(tmp.path(), 2, &["--resolution", "64"]);
    // The old layout: manifest, rejects log and summary beside the shards.
    let side = out.join("__maetok__");
    for e in std::fs::read_dir(&side).unwrap() {
        let e = e.unwrap();
        std::fs::rename(e.path(), out.join(e.file_name())).unwrap();
    }
    std::fs::remove_dir(&side).unwrap();
    let mpath = out.join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&mpath).unwrap()).unwrap();
    m["rejects_file"] = "rejects.jsonl".into();
    std::fs::write(&mpath, m.to_string()).unwrap();
    let o = maetok_e2e::run_ok(&["shards", "verify", out.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("OK"));
    let folder = maetok_pipeline::shard::reader::ShardFolder::open(&out).unwrap();
    assert_eq!(folder.manifest().stats.images, 8);
    // Resuming the finished job in place leaves it in its layout.
    let o = maetok_e2e::preprocess(
        tmp.path().join("f").to_str().unwrap(),
        &out,
        &["--resolution", "64"],
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("already complete"),
        "{o:?}"
    );
    assert!(mpath.exists() && !side.join("manifest.json").exists());
}

#[test]
fn verify_deep_finds_non_finite_targets() {
    let python = std::env::var("MAETOK_PYTHON_BIN")
        .expect("MAETOK_PYTHON_BIN is not set: run the tests through `./run test`");
    let tmp = tempfile::tempdir().unwrap();
    let out = maetok_e2e::synth_shards(tmp.path(), 2, &["--resolution", "64"]);
    // Rewrite the shard with NaN in one HOG value (as a damaged teacher run would have
    // stored before the writer refused them).
    let shard = out.join("shard-00000.parquet");
    let script = r#"
import sys, numpy as np, pyarrow as pa, pyarrow.parquet as pq
p = sys.argv[1]
t = pq.read_table(p)
hog = t.column("hog").combine_chunks()
vals = np.asarray(hog.flatten()).copy()
vals[5] = np.nan
col = pa.FixedSizeListArray.from_arrays(pa.array(vals, type=pa.float16()), type=hog.type)
t = t.set_column(t.schema.get_field_index("hog"), t.schema.field("hog"), col)
pq.write_table(t, p, compression="zstd")
"#;
    let o = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(&shard)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = maetok_e2e::run(&["shards", "verify", "--deep", out.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success(), "{text}");
    assert!(
        text.contains("shard-00000.parquet") && text.contains("`hog` target: 1 row(s) hold NaN"),
        "{text}"
    );
}
