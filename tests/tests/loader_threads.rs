//! The loader's background thread never runs libtorch: a libtorch op there starts a second
//! OpenMP team whose threads spin on the cores the training step computes on (at 2 threads
//! on 2 cores this halved the step rate). Its own test binary, so no other test's threads
//! are counted.

use maetok_e2e::synth_shards;
use maetok_trainer::data::{DataCursor, Loader, LoaderConfig};

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn the_loader_thread_starts_no_openmp_team() {
    let tmp = tempfile::tempdir().unwrap();
    let shards = synth_shards(tmp.path(), 6, &["--views", "2", "--resolution", "64"]);
    // This thread's OpenMP team exists before counting: a large op runs in parallel.
    tch::set_num_threads(2);
    let _ = tch::Tensor::ones([1 << 20], tch::kind::FLOAT_CPU) * 2.0;
    let before = threads();
    let loader = Loader::start(
        LoaderConfig {
            dir: shards,
            batch_size: 8,
            seed: 0,
            rank: 0,
            world: 1,
            targets: vec!["hog".into()],
            prefetch: 2,
            text: false,
            decode_threads: 1,
            verify: false,
        },
        DataCursor::default(),
    )
    .unwrap();
    for _ in 0..6 {
        let b = loader.next_batch().unwrap();
        // Batches of 8 × 3 × 64 × 64 are large enough for libtorch to parallelise.
        assert_eq!(b.images.size(), [8, 3, 64, 64]);
    }
    assert_eq!(threads(), before + 1, "the loader thread and nothing else");
}
