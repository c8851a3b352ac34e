#!/usr/bin/env bash
# Preprocess benchmark: maetok vs the Python reference on the same real-size JPEGs, one
# worker thread each, in one run; then a check that both produced the same pixels and HOG.
#
#   MAETOK_REF_DIR=<git archive f4d60a0 of the official code> GEN_PYTHON=<python with
#   tests/fixtures/gen/requirements.txt> benches/preprocess/run.sh [N=500]
#
# Results go to bench-out/preprocess.json; docs/benchmarks.md records them.
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${1:-500}"
: "${MAETOK_REF_DIR:?set MAETOK_REF_DIR to the official MAETok code (utils/hog.py)}"
PY="${GEN_PYTHON:?set GEN_PYTHON to a python with tests/fixtures/gen/requirements.txt + pyarrow}"
source scripts/env.sh
cargo build --release --locked -p maetok-trainer --bin maetok >&2
out=bench-out/preprocess
mkdir -p "$out"
rm -rf "$out/ours" "$out"/*.jsonl
[ -d "$out/jpegs" ] && [ "$(ls "$out/jpegs" | wc -l)" = "$N" ] || { rm -rf "$out/jpegs"; "$PY" benches/preprocess/make_jpegs.py "$out/jpegs" "$N" >&2; }
cat "$out"/jpegs/*.jpg > /dev/null   # warm the page cache for both sides

# The machine may be shared and noisy: alternate the two sides for $ROUNDS rounds and keep
# each side's best. Both sides are timed inside the process (imports / library loading
# excluded): the reference around its loop, maetok by its own summary (wall and CPU).
ROUNDS="${ROUNDS:-3}"
for r in $(seq "$ROUNDS"); do
    echo "round $r: python reference (1 thread)..." >&2
    "$PY" benches/preprocess/reference.py "$out/jpegs" "$out/reference.parquet" >> "$out/reference.jsonl"
    echo "round $r: maetok preprocess (--threads 1)..." >&2
    rm -rf "$out/ours"
    ./target/release/maetok --log warn preprocess --input "$out/jpegs" --output "$out/ours" --threads 1 \
        --shard-rows 100000 --no-progress > /dev/null
    cat "$out/ours/summary.json" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)))' >> "$out/ours.jsonl"
done
cmp=$("$PY" benches/preprocess/compare.py "$out/ours" "$out/reference.parquet")
python3 - "$out" "$cmp" "$N" <<'PYEOF' | tee bench-out/preprocess.json
import json, sys
out, cmp, n = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
ref = [json.loads(l) for l in open(f"{out}/reference.jsonl")]
ours = [json.loads(l) for l in open(f"{out}/ours.jsonl")]
ref_wall = min(r["seconds"] for r in ref); ref_cpu = min(r["cpu_seconds"] for r in ref)
our_wall = min(o["elapsed_s"] for o in ours); our_cpu = min(o["cpu_s"] for o in ours)
print(json.dumps({
    "images": n, "rounds": len(ours),
    "reference": {"images_per_s": n / ref_wall, "cpu_ms_per_image": 1e3 * ref_cpu / n},
    "maetok": {"images_per_s": n / our_wall, "cpu_ms_per_image": 1e3 * our_cpu / n,
               "peak_rss_mb": max(o["peak_rss_bytes"] for o in ours) / 2**20},
    "ratio_wall": ref_wall / our_wall,
    "ratio_cpu": ref_cpu / our_cpu,
    "check": cmp,
}, indent=1))
PYEOF
