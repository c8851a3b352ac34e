#!/usr/bin/env bash
# Device check for the data side (issue 15, point 3), on the GPU machine: does the CPU keep
# the GPU busy? Teacher images/s on the GPU (DINOv2-L/14 and SigLIP so400m/14 of RANDOM
# weights in their real shapes, run at 256 px / patch 16 as preprocessing runs them, bf16)
# against the rate at which the CPU decodes, crops and HOGs the same images on all its
# cores (`maetok preprocess` without teachers), and the shard loader's images/s against
# what a training step consumes (compare with the tokenizer part's images/s). The images
# are the demo's synthetic ones (JPEG and PNG, up to 1024 × 768). Figures to
# $OUT/pipeline.json, the log beside it; each part time-boxed.
#
#   [MAETOK_BIN=target/release/maetok] [TORCH_PYTHON=/opt/torch/.venv/bin/python] \
#     benches/gpu/pipeline.sh [--dry-run]
#
# --dry-run: the same parts on the CPU with a tiny random tower, 16 images, 2 threads.
set -euo pipefail
cd "$(dirname "$0")/../.."
NAME=pipeline
source benches/gpu/lib.sh
if [ "$DRY" = 1 ]; then
    DEVICE=cpu SHAPES="tiny" PER_CLASS=4 THREADS=2 BATCH=4 BATCHES=5
else
    DEVICE=cuda SHAPES="dinov2-l siglip-so400m" PER_CLASS=128 THREADS="$(nproc)" BATCH=64 BATCHES=100
fi

part data 300 "$BIN" --log-level warn demo --output "$W/demo" --per-class "$PER_CLASS" --tars 1 \
    --per-tar 4 --train-steps 0 --threads "$THREADS"
IMAGES="$W/demo/data/imagefolder"
part decode 300 bash -c "'$BIN' --log-level warn preprocess --input '$IMAGES' --output '$W/shards' \
    --resolution 256 --views 2 --threads $THREADS > '$W/decode.txt'"
part loader 120 bash -c "'$BIN' --log-level warn bench loader --shards '$W/shards' --batch-size $BATCH \
    --batches $BATCHES --targets hog --decode-threads $THREADS > '$W/loader.json'"
for s in $SHAPES; do
    family=${s%%-*}; [ "$s" = tiny ] && family=dinov2
    part "weights-$s" 120 "$BIN" --log-level warn bench random-teacher --shape "$s" --output "$W/t-$s"
    part "teacher-$s" 300 bash -c "'$BIN' --log-level warn teacher features --teacher $family \
        --weights '$W/t-$s/model.safetensors' --input '$IMAGES' --output '$W/f-$s.safetensors' \
        --device $DEVICE --batch-size $BATCH --resolution 256 --patch-size 16 > '$W/teacher-$s.txt'"
done
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$W/gpu.txt" 2>/dev/null || echo "none" > "$W/gpu.txt"

"$PY" - "$W" "$OUTDIR/pipeline.json" "$DRY" "$THREADS" "$SHAPES" <<'PYEOF'
import json, os, re, sys
w, out, dry, threads, shapes = sys.argv[1:6]
read = lambda f: open(os.path.join(w, f)).read() if os.path.exists(os.path.join(w, f)) else ""
res = {"dry_run": dry == "1", "gpu": read("gpu.txt").strip(), "cpu_threads": int(threads), "parts": {}}
for f in sorted(os.listdir(w)):
    if f.endswith(".status"):
        res["parts"][f[:-7]] = read(f).strip()
m = re.search(r"throughput\s+([0-9.]+) images/s", read("decode.txt"))
res["cpu_preprocess_images_per_sec"] = float(m.group(1)) if m else None
lj = read("loader.json").strip().splitlines()
res["loader"] = json.loads(lj[-1]) if lj else None
res["teachers"] = {}
for s in shapes.split():
    m = re.search(r"\(([0-9.]+) images/s\)", read(f"teacher-{s}.txt"))
    rate = float(m.group(1)) if m else None
    cpu = res["cpu_preprocess_images_per_sec"]
    res["teachers"][s] = {"gpu_images_per_sec": rate,
                          # > 1: the CPU's decoding keeps up with the teacher (GPU-bound).
                          "cpu_over_gpu": cpu / rate if cpu and rate else None}
json.dump(res, open(out, "w"), indent=1)
print(json.dumps(res, indent=1))
PYEOF
