#!/usr/bin/env bash
# Teacher benchmark: DINOv2 ViT-L/14 (random weights, real shape) built at 256 px / patch 16
# in maetok (Rust, libtorch) and in timm 1.0.12 (Python), same images, same thread count,
# alternating rounds; then the parity of the two outputs, and a whole preprocess run with
# the teacher.
#
#   GEN_PYTHON=<python with timm 1.0.12, see tests/fixtures/gen/README.md> \
#       benches/teachers/run.sh [N=32] [BATCH=8]
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${1:-32}"
BATCH="${2:-8}"
ARCH="${ARCH:-vit_large_patch14_dinov2}"
PY="${GEN_PYTHON:?set GEN_PYTHON to a python with timm 1.0.12}"
source scripts/env.sh
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --locked -p maetok-trainer --bin maetok >&2
out=bench-out/teachers
mkdir -p "$out"
[ -f "$out/$ARCH.safetensors" ] || "$PY" benches/teachers/bench.py weights "$ARCH" "$out/$ARCH.safetensors"
[ -d "$out/jpegs" ] && [ "$(ls "$out/jpegs" | wc -l)" = "$N" ] || { rm -rf "$out/jpegs"; "$PY" benches/preprocess/make_jpegs.py "$out/jpegs" "$N" >&2; }
echo '{"num_heads": 16}' > "$out/config.json"
rm -f "$out"/*.jsonl "$out"/*.txt
for r in $(seq "${ROUNDS:-2}"); do
    echo "round $r: timm..." >&2
    "$PY" benches/teachers/bench.py timm "$ARCH" "$out/$ARCH.safetensors" "$out/jpegs" "$out/ref.safetensors" "$BATCH" >> "$out/timm.jsonl"
    echo "round $r: maetok..." >&2
    ./target/release/maetok --log warn teacher features --teacher dinov2 --weights "$out/$ARCH.safetensors" \
        --model-config "$out/config.json" --input "$out/jpegs" --output "$out/ours.safetensors" \
        --batch-size "$BATCH" | tee -a "$out/ours.txt" >&2
done
"$PY" benches/teachers/bench.py compare "$out/ours.safetensors" "$out/ref.safetensors" | tee "$out/parity.json"
# HF transformers runs DINOv2 only at its native patch 14: compare at 224 px (16x16 tokens,
# the same work as 256 px / patch 16) against maetok at patch 14.
for r in $(seq "${ROUNDS:-2}"); do
    echo "round $r: transformers (224 px, patch 14)..." >&2
    "$PY" benches/teachers/bench.py hf "$out/$ARCH.safetensors" "$out/jpegs" "$out/hf.safetensors" "$BATCH" 224 >> "$out/hf.jsonl"
    echo "round $r: maetok (224 px, patch 14)..." >&2
    ./target/release/maetok --log warn teacher features --teacher dinov2 --weights "$out/$ARCH.safetensors" \
        --model-config "$out/config.json" --input "$out/jpegs" --output "$out/ours14.safetensors" \
        --batch-size "$BATCH" --resolution 224 --patch-size 14 | tee -a "$out/ours14.txt" >&2
done
"$PY" benches/teachers/bench.py compare "$out/ours14.safetensors" "$out/hf.safetensors" | tee "$out/parity-hf.json"
for storage in f16 int8; do
    echo "whole preprocess with the teacher ($storage)..." >&2
    rm -rf "$out/shards-$storage"
    ./target/release/maetok --log warn preprocess --input "$out/jpegs" --output "$out/shards-$storage" \
        --teacher "dinov2=$out/$ARCH.safetensors" --teacher-batch "$BATCH" --teacher-storage "$storage" \
        --no-progress | tee "$out/preprocess-$storage.txt" >&2
done
"$PY" benches/teachers/bench.py storage "$out/shards-f16" "$out/shards-int8" dinov2 | tee "$out/storage.json"
