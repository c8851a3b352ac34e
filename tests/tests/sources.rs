//! Sources and labels: an ImageNet subset keeps the full-set indices, a flat folder takes
//! its labels from a `filename,synset` CSV (ImageNet val), other class folders are labelled
//! by their own sorted list (recorded in the manifest), captions come from sibling `.txt`
//! or the configured `.json` field, and keys are paths without extension.

use std::collections::BTreeMap;
use std::path::Path;

use arrow::array::{Array, AsArray};
use arrow::datatypes::Int32Type;
use maetok_e2e::{batches, manifest, preprocess};
use maetok_pipeline::synth;

/// key → (label, caption) of view 0 rows.
fn rows(dir: &Path) -> BTreeMap<String, (Option<i32>, Option<String>)> {
    let mut out = BTreeMap::new();
    for b in batches(dir) {
        let key = b.column_by_name("key").unwrap().as_string::<i32>();
        let label = b
            .column_by_name("label")
            .unwrap()
            .as_primitive::<Int32Type>();
        let caption = b.column_by_name("caption").unwrap().as_string::<i32>();
        for i in 0..b.num_rows() {
            let l = (!label.is_null(i)).then(|| label.value(i));
            let c = (!caption.is_null(i)).then(|| caption.value(i).to_string());
            out.insert(key.value(i).to_string(), (l, c));
        }
    }
    out
}

fn jpeg(i: usize) -> Vec<u8> {
    synth::encode(&synth::sample(i % 4, i), 0).0
}

#[test]
fn imagenet_subsets_flat_val_and_other_datasets_get_the_right_labels() {
    let tmp = tempfile::tempdir().unwrap();
    // ImageNet subset: goldfish (index 1) and toilet tissue (index 999) only.
    let train = tmp.path().join("train");
    for (synset, n) in [("n01443537", 2), ("n15075141", 1)] {
        std::fs::create_dir_all(train.join(synset)).unwrap();
        for i in 0..n {
            std::fs::write(
                train.join(synset).join(format!("{synset}_{i}.JPEG")),
                jpeg(i),
            )
            .unwrap();
        }
    }
    let out = tmp.path().join("train-out");
    preprocess(train.to_str().unwrap(), &out, &[]);
    let r = rows(&out);
    assert_eq!(r["n01443537/n01443537_0"].0, Some(1));
    assert_eq!(r["n15075141/n15075141_0"].0, Some(999));
    assert_eq!(
        manifest(&out, "manifest.json")["source"]["label_set"]["kind"],
        "imagenet1k"
    );

    // ImageNet val as shipped: flat files + LOC_val_solution.csv.
    let val = tmp.path().join("val");
    std::fs::create_dir_all(&val).unwrap();
    for i in 1..=3 {
        std::fs::write(val.join(format!("ILSVRC2012_val_0000000{i}.JPEG")), jpeg(i)).unwrap();
    }
    let csv = tmp.path().join("LOC_val_solution.csv");
    std::fs::write(
        &csv,
        "ImageId,PredictionString\nILSVRC2012_val_00000001,n01751748 1 2 3 4\nILSVRC2012_val_00000002,n01440764 5 6 7 8\n",
    )
    .unwrap();
    let out = tmp.path().join("val-out");
    preprocess(
        val.to_str().unwrap(),
        &out,
        &["--labels-csv", csv.to_str().unwrap()],
    );
    let r = rows(&out);
    assert_eq!(
        r["ILSVRC2012_val_00000001"].0,
        Some(65),
        "n01751748 (sea snake) is class 65"
    );
    assert_eq!(r["ILSVRC2012_val_00000002"].0, Some(0));
    assert_eq!(
        r["ILSVRC2012_val_00000003"].0, None,
        "not in the CSV: unlabelled"
    );

    // Another dataset's classes, with captions from .txt and from a chosen .json field.
    let other = tmp.path().join("other");
    for (class, i) in [("dogs", 0), ("cats", 1), ("cats", 2)] {
        std::fs::create_dir_all(other.join(class)).unwrap();
        std::fs::write(other.join(class).join(format!("{i}.jpg")), jpeg(i)).unwrap();
    }
    std::fs::write(other.join("dogs/0.txt"), "a dog from txt").unwrap();
    std::fs::write(
        other.join("cats/1.json"),
        r#"{"alt_text": "a cat from json", "caption": "not this one"}"#,
    )
    .unwrap();
    let out = tmp.path().join("other-out");
    preprocess(
        other.to_str().unwrap(),
        &out,
        &["--caption-field", "alt_text"],
    );
    let r = rows(&out);
    assert_eq!(r["dogs/0"], (Some(1), Some("a dog from txt".to_string())));
    assert_eq!(r["cats/1"], (Some(0), Some("a cat from json".to_string())));
    assert_eq!(r["cats/2"], (Some(0), None));
    let m = manifest(&out, "manifest.json");
    assert_eq!(
        m["source"]["label_set"],
        serde_json::json!({"kind": "classes", "names": ["cats", "dogs"]})
    );
    assert_eq!(
        m["stats"]["missing_captions"], 1,
        "the folder has captions, so cats/2's absence is counted"
    );
}
