//! The shard loader: one global order per epoch, world = 2 slicing equal to world = 1,
//! resume from a cursor, stored views and targets returned as stored.

use std::collections::HashMap;

use arrow::array::AsArray;
use arrow::datatypes::{Float16Type, Int16Type};
use maetok_e2e::{batches, synth_shards};
use maetok_trainer::data::{DataCursor, Loader, LoaderConfig};

fn cfg(dir: &std::path::Path, batch: usize, rank: usize, world: usize) -> LoaderConfig {
    LoaderConfig {
        dir: dir.to_path_buf(),
        batch_size: batch,
        seed: 5,
        rank,
        world,
        targets: vec!["hog".into()],
        prefetch: 2,
        text: false,
        decode_threads: 1,
        verify: false,
    }
}

#[test]
fn global_order_rank_slicing_resume_and_values() {
    let tmp = tempfile::tempdir().unwrap();
    let shards = synth_shards(
        tmp.path(),
        10,
        &["--views", "3", "--shard-rows", "16", "--resolution", "64"],
    );

    // World 1, batch 4: one epoch = 10 steps covering the 40 images once.
    let l1 = Loader::start(cfg(&shards, 4, 0, 1), DataCursor::default()).unwrap();
    assert_eq!(l1.images, 40);
    let mut epoch: Vec<(String, i16)> = Vec::new();
    let mut cursors = Vec::new();
    let started = std::time::Instant::now();
    for _ in 0..10 {
        let b = l1.next_batch().unwrap();
        assert_eq!(b.images.size(), [4, 3, 64, 64]);
        assert_eq!(b.targets[0].1.size(), [4, 16, 108]);
        cursors.push(b.cursor_after);
        epoch.extend(b.keys.into_iter().zip(b.views));
    }
    println!(
        "loader: {:.1} batches/s of 4 (64 px, hog)",
        10.0 / started.elapsed().as_secs_f64()
    );
    let mut keys: Vec<&String> = epoch.iter().map(|(k, _)| k).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 40, "every image once per epoch");
    assert_eq!(
        cursors[9],
        DataCursor {
            epoch: 1,
            position: 0
        }
    );
    assert!(epoch.iter().any(|(_, v)| *v != 0), "views are sampled");
    let next_epoch = l1.next_batch().unwrap();
    assert_ne!(
        next_epoch.keys,
        epoch[..4]
            .iter()
            .map(|(k, _)| k.clone())
            .collect::<Vec<_>>(),
        "new epoch, new order"
    );

    // World 2, batch 2 per rank: step s of the two ranks = step s of world 1.
    let r0 = Loader::start(cfg(&shards, 2, 0, 2), DataCursor::default()).unwrap();
    let r1 = Loader::start(cfg(&shards, 2, 1, 2), DataCursor::default()).unwrap();
    for s in 0..10 {
        let (a, b) = (r0.next_batch().unwrap(), r1.next_batch().unwrap());
        assert_eq!(a.cursor_after, cursors[s]);
        let mut got: Vec<(String, i16)> = a
            .keys
            .into_iter()
            .zip(a.views)
            .chain(b.keys.into_iter().zip(b.views))
            .collect();
        let mut want = epoch[s * 4..s * 4 + 4].to_vec();
        got.sort();
        want.sort();
        assert_eq!(got, want, "step {s}");
    }

    // Resume from the cursor after step 3 = step 4 of the uninterrupted run.
    let resumed = Loader::start(cfg(&shards, 4, 0, 1), cursors[2])
        .unwrap()
        .next_batch()
        .unwrap();
    let want: Vec<(String, i16)> = epoch[12..16].to_vec();
    assert_eq!(
        resumed
            .keys
            .into_iter()
            .zip(resumed.views)
            .collect::<Vec<_>>(),
        want
    );

    // Values: the stored view's pixels and HOG.
    let mut stored: HashMap<(String, i16), (Vec<u8>, Vec<f32>)> = HashMap::new();
    for b in batches(&shards) {
        let key = b.column_by_name("key").unwrap().as_string::<i32>();
        let view = b
            .column_by_name("view")
            .unwrap()
            .as_primitive::<Int16Type>();
        let png = b.column_by_name("image").unwrap().as_binary::<i32>();
        let hog = b.column_by_name("hog").unwrap().as_fixed_size_list();
        for i in 0..b.num_rows() {
            let px = image::load_from_memory(png.value(i))
                .unwrap()
                .to_rgb8()
                .into_raw();
            let h: Vec<f32> = hog
                .value(i)
                .as_primitive::<Float16Type>()
                .values()
                .iter()
                .map(|x| x.to_f32())
                .collect();
            stored.insert((key.value(i).to_string(), view.value(i)), (px, h));
        }
    }
    let b = Loader::start(cfg(&shards, 4, 0, 1), DataCursor::default())
        .unwrap()
        .next_batch()
        .unwrap();
    for (i, kv) in b
        .keys
        .iter()
        .cloned()
        .zip(b.views.iter().copied())
        .enumerate()
    {
        let (px, hog) = &stored[&kv];
        let img = ((b.images.get(i as i64).permute([1, 2, 0]) + 1.0) * 127.5)
            .round()
            .to_kind(tch::Kind::Uint8);
        let got: Vec<u8> = Vec::try_from(img.flatten(0, -1)).unwrap();
        assert_eq!(&got, px, "{kv:?}");
        let got: Vec<f32> = Vec::try_from(b.targets[0].1.get(i as i64).flatten(0, -1)).unwrap();
        assert_eq!(&got, hog, "{kv:?}");
    }
    // A missing target column is named.
    let mut bad = cfg(&shards, 4, 0, 1);
    bad.targets = vec!["dinov2".into()];
    let e = Loader::start(bad, DataCursor::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("no `dinov2` column") && e.contains("hog"), "{e}");
}

/// Decoding a batch's PNGs on several threads gives the same batches as on one.
#[test]
fn decode_threads_change_nothing_but_speed() {
    let tmp = tempfile::tempdir().unwrap();
    let shards = synth_shards(
        tmp.path(),
        5,
        &["--views", "2", "--shard-rows", "8", "--resolution", "64"],
    );
    let take = |threads: usize| {
        let mut c = cfg(&shards, 6, 0, 1);
        c.decode_threads = threads;
        let l = Loader::start(c, DataCursor::default()).unwrap();
        (0..4)
            .map(|_| {
                let b = l.next_batch().unwrap();
                (b.keys, b.views, b.images, b.targets[0].1.shallow_clone())
            })
            .collect::<Vec<_>>()
    };
    let (one, three) = (take(1), take(3));
    for (a, b) in one.iter().zip(&three) {
        assert_eq!((&a.0, &a.1), (&b.0, &b.1));
        assert!(a.2.equal(&b.2) && a.3.equal(&b.3));
    }
}
