#!/usr/bin/env bash
# Tokenizer training-step benchmark: maetok's stage-1 step vs the official PyTorch step on
# the same tiny tokenizer (benches/tokenizer/tiny.toml), same batch, same thread count, in
# alternating rounds; plus the shard loader's batches/s at 64 and 256 px.
#
#   GEN_PYTHON=<python with timm 1.0.12 and the official code, tests/fixtures/gen/README.md> \
#   MAETOK_REF_DIR=/tmp/maetok-ref benches/tokenizer/run.sh [STEPS=100] [THREADS=2]
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${1:-100}"
THREADS="${2:-2}"
PY="${GEN_PYTHON:?set GEN_PYTHON to a python with timm 1.0.12}"
source scripts/env.sh
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --locked -p maetok-trainer --bin maetok >&2
out=bench-out/tokenizer
mkdir -p "$out"
if [ ! -f "$out/shards/manifest.json" ]; then
    ./target/release/maetok --log warn demo --output "$out/demo" --train-steps 0 >/dev/null
    ./target/release/maetok --log warn preprocess --input "$out/demo/data/imagefolder" \
        --output "$out/shards" --resolution 64 --views 2 --no-progress >/dev/null
fi
rm -f "$out"/steps.jsonl
export OMP_NUM_THREADS="$THREADS"
for r in $(seq "${ROUNDS:-2}"); do
    echo "round $r: official..." >&2
    "$PY" benches/tokenizer/bench_step.py "$STEPS" 16 "$THREADS" >> "$out/steps.jsonl"
    "$PY" benches/tokenizer/bench_step.py "$STEPS" 16 "$THREADS" single >> "$out/steps.jsonl"
    echo "round $r: maetok..." >&2
    rm -rf "$out/run"
    ./target/release/maetok --log warn train tokenizer --config benches/tokenizer/tiny.toml \
        --run "$out/run" --shards "$out/shards" --max-steps "$STEPS" >/dev/null
    "$PY" - "$out/run/metrics.jsonl" "$THREADS" >> "$out/steps.jsonl" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rows = [r for r in rows if "it_per_sec" in r][1:]  # the first window holds start-up
its = sum(r["it_per_sec"] for r in rows) / len(rows)
wait = sum(r["data_wait"] for r in rows) / len(rows)
print(json.dumps({"impl": "maetok", "steps": 20 * len(rows), "batch": 16, "threads": int(sys.argv[2]),
                  "sec_per_step": 1 / its, "it_per_sec": its, "data_wait": wait}))
PYEOF
done
cat "$out/steps.jsonl"
echo "loader:" >&2
./target/release/maetok --log warn bench loader --shards "$out/shards" --batch-size 16 --batches 200 --targets hog
for dt in 1 2; do
    ./target/release/maetok --log warn bench loader --shards "$out/demo/shards/imagefolder" \
        --batch-size 64 --batches 30 --targets hog --decode-threads "$dt"
done
