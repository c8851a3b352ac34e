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
#   tokenizer benches/tokenizer/gpu.sh: MAETok-B/128 stage 1 with every loss on (LPIPS,
#             GAN from step 1, HOG/DINOv2/SigLIP decoders) at batch 64, bf16 and fp32 from
#             the same initial weights: step time, images/s, MFU, the first losses side by side
#   pipeline  benches/gpu/pipeline.sh: DINOv2-L and SigLIP so400m images/s on the GPU
#             against the CPU's preprocessing rate on all cores; the loader's images/s
#             (gpu.json's `loader_over_step`: the loader's rate over the bf16 step's)
#
# Everything lands in $OUT/gpu.json (with nvidia-smi's GPU name, driver and CUDA version),
# the parts' own JSON and logs beside it. Commit gpu.json as
# benches/gpu/results/h200-YYYY-MM-DD.json.
#
#   strip -o bench-out/maetok target/release/maetok
#   MAETOK_BIN=bench-out/maetok benches/gpu/run.sh [--dry-run]
#
# --dry-run: every part on the CPU with the part scripts' tiny shapes (CI runs it).
set -euo pipefail
cd "$(dirname "$0")/../.."
NAME=gpu-run LOG_NAME=gpu
source benches/gpu/lib.sh
if [ "$DRY" = 1 ]; then
    DEVICE=cpu FLAG=--dry-run TPREC=fp32 TSTEPS=2 TBATCH=1
else
    DEVICE=cuda FLAG= TPREC="bf16 fp32" TSTEPS=30 TBATCH=64
fi
export TORCH_PYTHON="$PY"
export MAETOK_BIN="$BIN"

part env 60 bash -c "'$BIN' env > '$W/env.txt'"
part parity 120 bash -c "NVIDIA_TF32_OVERRIDE=0 '$BIN' --log-level warn bench device-parity \
    --device $DEVICE --fixtures tests/fixtures > '$W/parity.json'"
for s in distributed sit eval pipeline; do
    part "$s" 420 env OUT="$W" bash "benches/gpu/$s.sh" $FLAG
done
part tokenizer 420 bash -c "OUT='$W' DEVICE=$DEVICE PRECISIONS='$TPREC' \
    bash benches/tokenizer/gpu.sh $TSTEPS $TBATCH > '$W/tokenizer.jsonl'"
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
for s in ("distributed", "sit", "eval", "pipeline"):
    f = os.path.join(w, f"{s}.json")
    res[s] = json.load(open(f)) if os.path.exists(f) else None
t = read("tokenizer.jsonl")
res["tokenizer"] = [json.loads(l) for l in t.splitlines() if l.startswith("{")] if t else None
step = [x for x in res["tokenizer"] or [] if "images_per_sec" in x]
step = ([x for x in step if x["precision"] == "bf16"] or step)[:1]
loader = (res["pipeline"] or {}).get("loader") or {}
if step and loader.get("images_per_sec_this_rank"):
    # > 1: the loader (at the pipeline part's batch) outruns the step's consumption.
    res["loader_over_step"] = loader["images_per_sec_this_rank"] / step[0]["images_per_sec"]
json.dump(res, open(out, "w"), indent=1)
print(json.dumps({"parts": res["parts"], "parity_worst": (res["parity"] or {}).get("worst")}, indent=1))
PYEOF
