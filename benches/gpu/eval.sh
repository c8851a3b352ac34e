#!/usr/bin/env bash
# Device check for evaluation (issue 14, point 6), on the H200 machine: the FID Inception's
# features per second on CUDA (fp32, batch 250, random uint8 images resized to 299 inside, as
# pytorch-fid does), FID of two 50K × 2048 feature sets end to end; and CUDA correctness:
# `maetok eval generation` on the same 256 samples and 256 reference images on the CPU and
# on CUDA, whose FID, IS and precision/recall must agree (random-weight Inception: the values
# mean nothing, their agreement does). Figures to $OUT/eval.json, the log beside it; each
# part time-boxed.
#
#   [MAETOK_BIN=target/release/maetok] [TORCH_PYTHON=/opt/torch/.venv/bin/python] \
#     benches/gpu/eval.sh [--dry-run]
#
# --dry-run: the same parts with the CPU in CUDA's place, 8 images (CI runs it). The machine
# has no Rust: carry a stripped binary (MAETOK_BIN=bench-out/maetok).
set -euo pipefail
cd "$(dirname "$0")/../.."
NAME=eval
source benches/gpu/lib.sh
if [ "$DRY" = 1 ]; then
    DEVICE=cpu IMAGES=4 BATCH=4 FIDN=500 EVALN=8
else
    DEVICE=cuda IMAGES=5000 BATCH=250 FIDN=50000 EVALN=256
fi

part inception 300 bash -c "'$BIN' --log-level warn bench inception --device $DEVICE --images $IMAGES \
    --batch $BATCH --fid-samples $FIDN > '$W/inception.json'"
part inputs 120 bash -c "'$BIN' --log-level warn bench inception --write-random '$W/inception.safetensors' && \
    '$PY' -c 'import numpy as np, sys
g = np.random.default_rng(0); n = int(sys.argv[2])
np.savez(sys.argv[1] + \"/samples.npz\", g.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8))
np.savez(sys.argv[1] + \"/reference.npz\", (g.integers(0, 256, (n, 64, 64, 3)) // 2).astype(np.uint8))' '$W' $EVALN"
for d in $(printf "cpu\n%s\n" "$DEVICE" | sort -u); do
    part "eval-$d" 300 "$BIN" --log-level warn eval generation --samples "$W/samples.npz" \
        --reference "$W/reference.npz" --output "$W/eval-$d" --inception "$W/inception.safetensors" \
        --device "$d" --batch 64 --cache "$W/cache-$d" --split-size 64
done
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$W/gpu.txt" 2>/dev/null || echo "none" > "$W/gpu.txt"

"$PY" - "$W" "$OUTDIR/eval.json" "$DEVICE" "$DRY" <<'PYEOF'
import json, os, sys
w, out, device, dry = sys.argv[1:5]
res = {"device": device, "dry_run": dry == "1", "gpu": open(os.path.join(w, "gpu.txt")).read().strip(), "parts": {}}
for f in sorted(os.listdir(w)):
    if f.endswith(".status"):
        res["parts"][f[:-7]] = open(os.path.join(w, f)).read().strip()
p = os.path.join(w, "inception.json")
if os.path.exists(p) and os.path.getsize(p):
    res["inception"] = json.loads(open(p).read())
reports = {}
for d in {"cpu", device}:
    r = os.path.join(w, f"eval-{d}", "report.json")
    if os.path.exists(r):
        reports[d] = json.load(open(r))
if "cpu" in reports and device in reports:
    a, b = reports["cpu"], reports[device]
    res["cpu_vs_device"] = {k: {"cpu": a[k], device: b[k], "rel": abs(a[k] - b[k]) / max(abs(a[k]), 1e-12)}
                            for k in ("fid", "sfid", "is", "precision", "recall") if a.get(k) is not None}
json.dump(res, open(out, "w"), indent=1)
print(json.dumps(res, indent=1))
PYEOF
