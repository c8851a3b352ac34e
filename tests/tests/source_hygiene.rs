//! Inputs are read once each, under one key each, with the labels they say, and whatever
//! is not read is counted: folders reached twice through a symlink, duplicate keys (in a
//! tar, across tars, across formats, an input given twice), `.cls` files that are not class
//! indices, empty class folders, files that are not images, tars that are empty or not
//! tars at all, malformed `.json` and invalid UTF-8 captions. `.tar.gz` files and folders
//! of tars are inputs as img2dataset writes them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::datatypes::Int32Type;
use maetok_e2e::{batches, fails_naming, jpeg, manifest, preprocess, tar_member};

fn counts(m: &serde_json::Value, field: &str) -> BTreeMap<String, u64> {
    m["stats"][field]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
                .collect()
        })
        .unwrap_or_default()
}

fn map(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// (key, label) of every view-0 row, in order.
fn keys_and_labels(dir: &Path) -> Vec<(String, Option<i32>)> {
    let mut out = Vec::new();
    for b in batches(dir) {
        let keys = b.column_by_name("key").unwrap().as_string::<i32>();
        let views = b
            .column_by_name("view")
            .unwrap()
            .as_primitive::<arrow::datatypes::Int16Type>();
        let labels = b
            .column_by_name("label")
            .unwrap()
            .as_primitive::<Int32Type>();
        for i in 0..b.num_rows() {
            if views.value(i) == 0 {
                let l = (!labels.is_null(i)).then(|| labels.value(i));
                out.push((keys.value(i).to_string(), l));
            }
        }
    }
    out
}

fn write_tar(path: &Path, members: &[(&str, Vec<u8>)]) -> PathBuf {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, data) in members {
        tar_member(&mut b, name, data);
    }
    b.finish().unwrap();
    path.to_path_buf()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_symlink_loop_is_followed_once_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("folder");
    for (c, i) in [("n01440764", 0), ("n01443537", 1)] {
        std::fs::create_dir_all(root.join(c)).unwrap();
        std::fs::write(root.join(c).join(format!("img{i}.jpg")), jpeg(i, i)).unwrap();
    }
    std::os::unix::fs::symlink("..", root.join("n01440764/loop")).unwrap();
    let out = tmp.path().join("out");
    preprocess(s(&root), &out, &["--resolution", "64"]);
    let m = manifest(&out, "manifest.json");
    assert_eq!(m["stats"]["images"], 2);
    assert_eq!(counts(&m, "rejects"), map(&[("symlink_loop", 1)]));
    let got = keys_and_labels(&out);
    assert_eq!(
        got,
        [
            ("n01440764/img0".to_string(), Some(0)),
            ("n01443537/img1".to_string(), Some(1))
        ]
    );
}

#[test]
fn keys_are_unique_in_a_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // The same basename twice in a tar, not adjacent; and a second tar repeating a key.
    let a = write_tar(
        &t.join("a.tar"),
        &[
            ("s/1.jpg", jpeg(0, 1)),
            ("s/2.jpg", jpeg(1, 2)),
            ("s/1.jpg", jpeg(2, 3)),
        ],
    );
    let b = write_tar(
        &t.join("b.tar"),
        &[("s/2.jpg", jpeg(3, 4)), ("s/3.jpg", jpeg(0, 5))],
    );
    let pattern = format!("{}/{{a,b}}.tar", t.display());
    let out = t.join("tars");
    preprocess(&pattern, &out, &["--resolution", "64"]);
    let m = manifest(&out, "manifest.json");
    assert_eq!(m["stats"]["images"], 3);
    assert_eq!(counts(&m, "rejects"), map(&[("duplicate_key", 2)]));
    let keys: Vec<String> = keys_and_labels(&out).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["s/1", "s/2", "s/3"]);
    assert!(a.exists() && b.exists());

    // a.jpg, a.png and a.webp in one folder; and the folder given twice.
    let folder = t.join("formats");
    std::fs::create_dir_all(&folder).unwrap();
    let img = maetok_pipeline::synth::sample(0, 7).image;
    std::fs::write(folder.join("a.jpg"), jpeg(0, 7)).unwrap();
    img.save(folder.join("a.png")).unwrap();
    image::DynamicImage::ImageRgb8(img.clone())
        .save(folder.join("a.webp"))
        .unwrap();
    std::fs::write(folder.join("b.jpg"), jpeg(1, 8)).unwrap();
    let out = t.join("twice");
    preprocess(
        s(&folder),
        &out,
        &["--input", s(&folder), "--resolution", "64"],
    );
    let m = manifest(&out, "manifest.json");
    assert_eq!(m["stats"]["images"], 2, "{m}");
    assert_eq!(counts(&m, "rejects"), map(&[("duplicate_key", 6)]));

    // The other policies: stop at the first, or keep all under new keys.
    fails_naming(
        &[
            "preprocess",
            "--input",
            s(&folder),
            "--output",
            s(&t.join("err")),
            "--resolution",
            "64",
            "--duplicates",
            "error",
            "--no-progress",
        ],
        &["duplicate key `a`", "a.png"],
    );
    let out = t.join("suffix");
    preprocess(
        s(&folder),
        &out,
        &["--resolution", "64", "--duplicates", "suffix"],
    );
    let keys: Vec<String> = keys_and_labels(&out).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["a", "a~2", "a~3", "b"]);
    let m = manifest(&out, "manifest.json");
    assert_eq!(
        counts(&m, "kept_with_notes"),
        map(&[("duplicate_key_renamed", 2)])
    );
}

#[test]
fn reconstruct_gives_every_key_its_own_file() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(input.join("x")).unwrap();
    std::fs::write(input.join("x/y.jpg"), jpeg(0, 1)).unwrap();
    std::fs::write(input.join("x__y.jpg"), jpeg(1, 2)).unwrap();
    let ck = maetok_e2e::fixtures().join("maetok/movq_64");
    let out = tmp.path().join("rec");
    maetok_e2e::run_ok(&[
        "reconstruct",
        "--checkpoint",
        s(&ck),
        "--input",
        s(&input),
        "--output",
        s(&out),
    ]);
    let mut names: Vec<String> = std::fs::read_dir(out.join("images"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["x%2Fy.png", "x__y.png"]);
    std::fs::write(input.join("x/y.png"), jpeg(2, 3)).unwrap();
    fails_naming(
        &[
            "reconstruct",
            "--checkpoint",
            s(&ck),
            "--input",
            s(&input),
            "--output",
            s(&tmp.path().join("rec2")),
        ],
        &["the key `x/y`"],
    );
}

#[test]
fn labels_are_class_indices_or_counted_nulls() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let tar = write_tar(
        &t.join("cls.tar"),
        &[
            ("s/0.jpg", jpeg(0, 0)),
            ("s/0.cls", b"-1".to_vec()),
            ("s/1.jpg", jpeg(1, 1)),
            ("s/1.cls", b"dog".to_vec()),
            ("s/2.jpg", jpeg(2, 2)),
            ("s/2.cls", b"3\n".to_vec()),
        ],
    );
    let out = t.join("o1");
    preprocess(s(&tar), &out, &["--resolution", "64"]);
    let m = manifest(&out, "manifest.json");
    assert_eq!(counts(&m, "kept_with_notes"), map(&[("bad_label", 2)]));
    let labels: Vec<Option<i32>> = keys_and_labels(&out).into_iter().map(|(_, l)| l).collect();
    assert_eq!(labels, [None, None, Some(3)]);
    // Out of range for the dataset's classes.
    let out = t.join("o1b");
    preprocess(s(&tar), &out, &["--resolution", "64", "--num-classes", "3"]);
    let m = manifest(&out, "manifest.json");
    assert_eq!(counts(&m, "kept_with_notes"), map(&[("bad_label", 3)]));
    let labels: Vec<Option<i32>> = keys_and_labels(&out).into_iter().map(|(_, l)| l).collect();
    assert_eq!(labels, [None, None, None]);

    // An empty class folder keeps its index and is reported.
    let folder = t.join("classes");
    for (c, n) in [("apple", 1), ("banana", 0), ("cherry", 1)] {
        std::fs::create_dir_all(folder.join(c)).unwrap();
        for i in 0..n {
            std::fs::write(folder.join(c).join(format!("{i}.jpg")), jpeg(i, i)).unwrap();
        }
    }
    let out = t.join("o2");
    preprocess(s(&folder), &out, &["--resolution", "64"]);
    let m = manifest(&out, "manifest.json");
    assert_eq!(counts(&m, "rejects"), map(&[("empty_class", 1)]));
    assert_eq!(
        m["source"]["label_set"]["names"],
        serde_json::json!(["apple", "banana", "cherry"])
    );
    let labels: Vec<Option<i32>> = keys_and_labels(&out).into_iter().map(|(_, l)| l).collect();
    assert_eq!(labels, [Some(0), Some(2)]);
}

#[test]
fn what_is_not_read_is_counted_and_img2dataset_layouts_are_read() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // Folders: other image formats, hidden and extensionless files; captions with a
    // malformed .json and invalid UTF-8.
    let folder = t.join("flat");
    std::fs::create_dir_all(folder.join(".cache")).unwrap();
    std::fs::write(folder.join("a.jpg"), jpeg(0, 1)).unwrap();
    std::fs::write(folder.join("a.json"), b"{\"caption\": ").unwrap();
    std::fs::write(folder.join("b.jpg"), jpeg(1, 2)).unwrap();
    std::fs::write(folder.join("b.txt"), b"caf\xe9 au lait").unwrap();
    for name in [
        "c.gif",
        "d.bmp",
        "e.tiff",
        ".DS_Store",
        "README",
        "notes.md",
    ] {
        std::fs::write(folder.join(name), b"x").unwrap();
    }
    let out = t.join("o1");
    preprocess(s(&folder), &out, &["--resolution", "64"]);
    let m = manifest(&out, "manifest.json");
    assert_eq!(m["stats"]["images"], 2);
    assert_eq!(
        counts(&m, "rejects"),
        map(&[
            ("hidden", 2),
            ("no_extension", 1),
            ("non_image_file", 1),
            ("unsupported_format", 3)
        ])
    );
    assert_eq!(
        counts(&m, "kept_with_notes"),
        map(&[("caption_invalid_utf8", 1), ("caption_malformed_json", 1)])
    );

    // Tars that are empty, gzip or text renamed .tar; a .tar.gz and a folder of tars.
    let tars = t.join("tars");
    std::fs::create_dir_all(&tars).unwrap();
    let plain = write_tar(
        &tars.join("00000.tar"),
        &[("s/1.jpg", jpeg(0, 3)), ("s/1.txt", b"one".to_vec())],
    );
    let gz_path = tars.join("00001.tar.gz");
    {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(
            std::fs::File::create(&gz_path).unwrap(),
            flate2::Compression::fast(),
        );
        let tmp_tar = write_tar(&t.join("inner.tar"), &[("s/2.jpg", jpeg(1, 4))]);
        e.write_all(&std::fs::read(tmp_tar).unwrap()).unwrap();
        e.finish().unwrap();
    }
    std::fs::write(tars.join("00002.tar"), b"").unwrap();
    {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(
            std::fs::File::create(tars.join("00003.tar")).unwrap(),
            flate2::Compression::fast(),
        );
        e.write_all("compressed text\n".repeat(64).as_bytes())
            .unwrap();
        e.finish().unwrap();
    }
    std::fs::write(tars.join("00004.tar"), "some text\n".repeat(100)).unwrap();
    let out = t.join("o2");
    let o = preprocess(s(&tars), &out, &["--resolution", "64"]);
    let m = manifest(&out, "manifest.json");
    assert_eq!(
        m["stats"]["images"],
        2,
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(
        counts(&m, "rejects"),
        map(&[("empty_file", 1), ("not_a_tar", 2)]),
    );
    let log = std::fs::read_to_string(out.join("__maetok__/rejects.jsonl")).unwrap();
    for needle in [
        "gzip data that does not hold a tar",
        "text (",
        "not a tar archive",
        "00004.tar",
    ] {
        assert!(log.contains(needle), "{needle}: {log}");
    }
    let keys: Vec<String> = keys_and_labels(&out).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["s/1", "s/2"]);
    assert!(plain.exists());
}
