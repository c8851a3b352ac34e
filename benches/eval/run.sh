#!/usr/bin/env bash
# Evaluation benchmark (issue 14, point 6): the FID Inception's features per second, maetok
# (`maetok bench inception`) vs pytorch-fid 0.3.0 on the same CPU threads, the same batch of
# random uint8 images (both resize to 299 inside); and FID from two 50K × 2048 feature sets
# end to end (statistics in float64, then the distance: ours by symmetric eigendecompositions,
# pytorch-fid's by scipy's sqrtm). Alternating rounds.
#
#   GEN_PYTHON=<python with pytorch-fid 0.3.0, torchvision 0.26.0, scipy> \
#     benches/eval/run.sh [IMAGES=200] [THREADS=2] [FID_SAMPLES=50000]
set -euo pipefail
cd "$(dirname "$0")/../.."
IMAGES="${1:-200}"
THREADS="${2:-2}"
FID_SAMPLES="${3:-50000}"
PY="${GEN_PYTHON:?set GEN_PYTHON to a python with pytorch-fid 0.3.0}"
source scripts/env.sh
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --locked -p maetok-trainer --bin maetok >&2
out=bench-out/eval
mkdir -p "$out"
: > "$out/results.jsonl"
export OMP_NUM_THREADS="$THREADS"
for r in $(seq "${ROUNDS:-2}"); do
    echo "round $r: pytorch-fid..." >&2
    "$PY" benches/eval/bench_inception.py "$IMAGES" 50 256 "$THREADS" "$FID_SAMPLES" >> "$out/results.jsonl"
    echo "round $r: maetok..." >&2
    ./target/release/maetok --log warn bench inception --images "$IMAGES" --batch 50 --side 256 \
        --fid-samples "$FID_SAMPLES" >> "$out/results.jsonl"
done
cat "$out/results.jsonl"
