//! `--caption-bpe`: captions become `text_ids` (open_clip's ids, ≤ 77, start/end tokens),
//! samples without a caption get null, and the manifest records the vocabulary.

use std::path::Path;

use arrow::array::{Array, AsArray};
use arrow::datatypes::Int32Type;
use maetok_e2e::{batches, manifest};
use maetok_pipeline::caption::{ClipBpe, CONTEXT_LEN};
use maetok_pipeline::synth;

#[test]
fn captions_are_tokenized_into_text_ids() {
    let dir = tempfile::tempdir().unwrap();
    let tars = synth::write_webdataset(&dir.path().join("wds"), 2, 4).unwrap();
    let photos = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/photos");
    let vocab =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/bpe/bpe_simple_vocab_16e6.txt.gz");
    let out = dir.path().join("shards");
    maetok_e2e::run_ok(&[
        "preprocess",
        "--input",
        &tars,
        photos.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--caption-bpe",
        vocab.to_str().unwrap(),
        "--no-hog",
        "--no-progress",
    ]);
    let bpe = ClipBpe::from_file(&vocab).unwrap();
    let (mut with, mut without) = (0, 0);
    for b in batches(&out) {
        let captions = b.column_by_name("caption").unwrap().as_string::<i32>();
        let ids = b.column_by_name("text_ids").unwrap().as_list::<i32>();
        for i in 0..b.num_rows() {
            if captions.is_null(i) {
                assert!(ids.is_null(i));
                without += 1;
                continue;
            }
            let got: Vec<u32> = ids
                .value(i)
                .as_primitive::<Int32Type>()
                .values()
                .iter()
                .map(|&x| x as u32)
                .collect();
            let want = bpe.tokenize(captions.value(i), CONTEXT_LEN);
            assert_eq!(got, want, "{}", captions.value(i));
            assert_eq!((got[0], *got.last().unwrap()), (49406, 49407));
            with += 1;
        }
    }
    assert_eq!(with, 8);
    assert!(without >= 8, "{without}"); // the photographs (and their PNG crops) have no captions
    let m = manifest(&out, "manifest.json");
    assert_eq!(m["text"]["vocab_size"], 49408);
    assert_eq!(m["text"]["context_len"], 77);
    assert_eq!(m["text"]["vocab_sha256"].as_str().unwrap().len(), 64);
    maetok_e2e::run_ok(&["shards", "verify", "--deep", out.to_str().unwrap()]);
}
