#!/usr/bin/env bash
# SiT benchmark: maetok's SiT training step and sampler vs the official PyTorch code on the
# same tiny SiT (configs/sit-tiny.toml's SiT-T/1 on 128 × 32 latents), same batch, same
# thread count, in alternating rounds.
#
#   GEN_PYTHON=<python with timm 1.0.12 and huggingface_hub, tests/fixtures/gen/README.md> \
#   MAETOK_REF_DIR=/tmp/maetok-ref benches/sit/run.sh [STEPS=100] [THREADS=2]
#
# The official side times a fixed batch (no data loading); ours is `maetok train sit` on a
# latent folder (its loader thread, per-sample keyed draws and bookkeeping included) and
# `maetok sample` (its chunk files included). Steps/s come from each side's own timer:
# ours from metrics.jsonl's `it_per_sec` of the logging windows after the first.
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${1:-100}"
THREADS="${2:-2}"
PY="${GEN_PYTHON:?set GEN_PYTHON to a python with timm 1.0.12}"
source scripts/env.sh
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --locked -p maetok-trainer --bin maetok >&2
out=bench-out/sit
mkdir -p "$out"
BIN=./target/release/maetok
if [ ! -f "$out/latents/manifest.json" ] && [ ! -f "$out/latents/__maetok__/manifest.json" ]; then
    # Random latents in the layout `maetok encode` writes (values do not change step time).
    "$BIN" --log warn bench latents --output "$out/latents" --images 2048 --tokens 128 --channels 32
fi
export OMP_NUM_THREADS="$THREADS"
sed -e 's/^steps = .*/steps = '"$((STEPS + 20))"'/' -e 's/^log_every = .*/log_every = 20/' \
    -e 's/^warmup_steps = .*/warmup_steps = 0/' -e 's/^normalize = .*/normalize = "none"/' \
    -e 's/^checkpoint_every = .*/checkpoint_every = 1000000/' configs/sit-tiny.toml > "$out/tiny.toml"
: > "$out/results.jsonl"
for r in $(seq "${ROUNDS:-2}"); do
    echo "round $r: official step..." >&2
    "$PY" benches/sit/bench_step.py step "$STEPS" 32 "$THREADS" >> "$out/results.jsonl"
    echo "round $r: maetok step..." >&2
    rm -rf "$out/run"
    "$BIN" --log warn train sit --config "$out/tiny.toml" --run-dir "$out/run" \
        --latents "$out/latents" > /dev/null
    python3 - "$out/run/metrics.jsonl" "$THREADS" >> "$out/results.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])][1:]
print(json.dumps({"side": "maetok", "what": "step", "threads": int(sys.argv[2]), "batch": 32,
                  "it_per_sec": sum(r["it_per_sec"] for r in rows) / len(rows)}))
PY
    echo "round $r: official sampler..." >&2
    "$PY" benches/sit/bench_step.py sample 32 50 "$THREADS" >> "$out/results.jsonl"
    echo "round $r: maetok sampler..." >&2
    rm -rf "$out/samples"
    s=$(date +%s.%N)
    "$BIN" --log warn sample --model "$out/run/checkpoints/$(cat "$out/run/latest")" \
        --output "$out/samples" --num 32 --batch 32 --sampler euler-maruyama --steps 50 \
        --cfg-scale 1.9 --cfg-interval 0,0.75
    python3 -c "import json,sys,time; dt=time.time()-float(sys.argv[1]); print(json.dumps({'side':'maetok','what':'sample','threads':int(sys.argv[2]),'samples':32,'steps':50,'sampler_steps_per_sec':50/dt,'samples_per_sec':32/dt}))" "$s" "$THREADS" >> "$out/results.jsonl"
done
cat "$out/results.jsonl"
