#!/usr/bin/env bash
# The GPU run (issue 15): one command on the H200 machine, from the repository root, with a
# stripped release binary carried there (the machine has no Rust; torch 2.11 at
# /opt/torch/.venv). Parts, each time-boxed so one failure does not eat the rest:
#
#   env       `maetok env` (libtorch, CUDA, whether libtorch_cuda is linked)
#   parity    the committed fixtures' MAETok encoder/decoder, DINOv2 teacher, SiT,
#             LightningDiT and FID Inception on CUDA fp32 against the CPU, TF32 off
#             (`NVIDIA_TF32_OVERRIDE=0`), within 1e-4 (`maetok bench device-parity`)
#   distributed, sit, eval
#             benches/gpu/{distributed,sit,eval}.sh: NCCL at world size 1 against no
#             collective layer; SiT-XL/1 bf16 step time, images/s, MFU and sampling;
#             Inception features/s, 50K FID, CUDA against CPU metrics
#
# Everything lands in $OUT/gpu.json (with nvidia-smi's GPU name, driver and CUDA version),
# the parts' own JSON and logs beside it. Commit gpu.json as
# benches/gpu/results/h200-YYYY-MM-DD.json.
#
#   strip -o bench-out/maetok target/release/maetok
#   MAETOK_BIN=bench-out/maetok benches/gpu/run.sh [--dry-run]
#
# --dry-run: every part on the CPU with the part scripts' tiny shapes (CI runs it).
# Not in it yet (issue 15): the tokenizer's stage-1 step in bf16 against fp32 on non-zero
# weights, the MAETok-B/128 step's MFU, teacher images/s against the CPU decode rate.
set -euo pipefail
cd "$(dirname "$0")/../.."
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
if [ "$DRY" = 1 ]; then
    PY="${TORCH_PYTHON:-${MAETOK_PYTHON_BIN:-python3}}"
    DEVICE=cpu FLAG=--dry-run
else
    PY="${TORCH_PYTHON:-/opt/torch/.venv/bin/python}"
    DEVICE=cuda FLAG=
fi
export TORCH_PYTHON="$PY"
BIN="${MAETOK_BIN:-target/release/maetok}"
export MAETOK_BIN="$BIN"
OUTDIR="${OUT:-bench-out}"
W="$OUTDIR/gpu-run"
rm -rf "$W" && mkdir -p "$W"
LOG="$OUTDIR/gpu.log"
: > "$LOG"
source benches/gpu/lib.sh
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

part env 60 bash -c "'$BIN' env > '$W/env.txt'"
part parity 120 bash -c "NVIDIA_TF32_OVERRIDE=0 '$BIN' --log-level warn bench device-parity \
    --device $DEVICE --fixtures tests/fixtures > '$W/parity.json'"
for s in distributed sit eval; do
    part "$s" 420 env OUT="$W" bash "benches/gpu/$s.sh" $FLAG
done
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$W/gpu.txt" 2>/dev/null || echo "none" > "$W/gpu.txt"
(nvidia-smi 2>/dev/null | grep -o "CUDA Version: [0-9.]*" || echo "none") > "$W/cuda.txt"

"$PY" - "$W" "$OUTDIR/gpu.json" "$DRY" <<'PYEOF'
import json, os, sys
w, out, dry = sys.argv[1:4]
read = lambda f: open(os.path.join(w, f)).read().strip() if os.path.exists(os.path.join(w, f)) else None
res = {"dry_run": dry == "1", "gpu": read("gpu.txt"), "cuda": read("cuda.txt"), "env": read("env.txt"), "parts": {}}
for f in sorted(os.listdir(w)):
    if f.endswith(".status"):
        res["parts"][f[:-7]] = read(f)
p = read("parity.json")
res["parity"] = json.loads(p) if p else None
for s in ("distributed", "sit", "eval"):
    f = os.path.join(w, f"{s}.json")
    res[s] = json.load(open(f)) if os.path.exists(f) else None
json.dump(res, open(out, "w"), indent=1)
print(json.dumps({"parts": res["parts"], "parity_worst": (res["parity"] or {}).get("worst")}, indent=1))
PYEOF
