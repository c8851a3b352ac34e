#!/usr/bin/env bash
# Device check for diffusion (issue 13, point 9), on the H200 machine: SiT-XL/1 on 128 × 32
# latents, bf16 autocast, global batch 256: step time, images/s and MFU (spec §7.1: 116.7
# GFLOP per forward, a training step counted as 3 forwards, against the H200's 989 TFLOP/s
# dense bf16); the first steps' losses in bf16 and fp32 side by side; sampling images/s
# with 250 Euler–Maruyama steps and CFG 1.9 on [0, 0.75] (the paper: 3.12 img/s on an A100
# at 512 px), the latents only (decoding by the tokenizer is not timed). The latents are
# random (`maetok bench latents`): a step takes as long with any values. Figures to
# $OUT/sit.json, the log beside it; each part time-boxed.
#
#   [MAETOK_BIN=target/release/maetok] [TORCH_PYTHON=/opt/torch/.venv/bin/python] \
#     benches/gpu/sit.sh [--dry-run]
#
# --dry-run: the same parts on the CPU, SiT-mini at batch 4, fp32, a few steps (CI runs it).
# The machine has no Rust: carry a stripped binary (`strip -o bench-out/maetok
# target/release/maetok`, MAETOK_BIN=bench-out/maetok).
set -euo pipefail
cd "$(dirname "$0")/../.."
NAME=sit
source benches/gpu/lib.sh
if [ "$DRY" = 1 ]; then
    DEVICE=cpu PRESET="SiT-mini/1" BATCH=4 STEPS=6 WARM=2 SAMPLES=4 SDE=5 PRECISIONS="fp32" IMAGES=64
else
    DEVICE=cuda PRESET="SiT-XL/1" BATCH=256 STEPS=40 WARM=10 SAMPLES=256 SDE=250 PRECISIONS="bf16 fp32" IMAGES=8192
fi

part latents 120 "$BIN" --log-level warn bench latents --output "$W/latents" --images "$IMAGES"
for p in $PRECISIONS; do
    cat > "$W/$p.toml" <<TOML
[model]
preset = "$PRESET"
num_classes = 1000
[data]
normalize = "none"
batch_size = $BATCH
prefetch = 8
[train]
steps = $STEPS
device = "$DEVICE"
precision = "$p"
log_every = 1
checkpoint_every = $STEPS
keep_checkpoints = 1
milestone_every = 0
sample_every = 0
grid_steps = 2
TOML
    part "train-$p" 300 "$BIN" --log-level warn train sit --config "$W/$p.toml" --run-dir "$W/run-$p" \
        --latents "$W/latents"
done
first="$(echo $PRECISIONS | cut -d' ' -f1)"
sdtype=bf16; [ "$DRY" = 1 ] && sdtype=fp32
part sample 300 bash -c "s=\$(date +%s.%N); '$BIN' --log-level warn sample --model '$W/run-$first' --output '$W/samples' \
    --num $SAMPLES --batch $SAMPLES --sampler euler-maruyama --steps $SDE --cfg-scale 1.9 --cfg-interval 0,0.75 \
    --device $DEVICE --dtype $sdtype && echo \"\$s \$(date +%s.%N)\" > '$W/sample.time'"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$W/gpu.txt" 2>/dev/null || echo "none" > "$W/gpu.txt"

"$PY" - "$W" "$OUTDIR/sit.json" "$PRESET" "$BATCH" "$WARM" "$SAMPLES" "$SDE" "$DRY" "$PRECISIONS" <<'PYEOF'
import json, os, sys
w, out, preset, batch, warm, samples, sde, dry, precisions = sys.argv[1:10]
batch, warm, samples, sde = int(batch), int(warm), int(samples), int(sde)
res = {"preset": preset, "batch": batch, "dry_run": dry == "1",
       "gpu": open(os.path.join(w, "gpu.txt")).read().strip(), "parts": {}}
for f in sorted(os.listdir(w)):
    if f.endswith(".status"):
        res["parts"][f[:-7]] = open(os.path.join(w, f)).read().strip()
# SiT-XL/1 on 128 tokens: 116.7e9 FLOPs per forward (spec 7.1); SiT-mini for the dry run.
flops = {"SiT-XL/1": 116.7e9, "SiT-mini/1": 2 * 128 * (32 * 32 * 3 + 32 * 32 + 2 * 32 * 128) * 2 + 4 * 128 * 128 * 32 * 2}[preset]
peak = 989e12
losses = {}
for p in precisions.split():
    m = os.path.join(w, f"run-{p}", "metrics.jsonl")
    if not os.path.exists(m):
        continue
    rows = [json.loads(l) for l in open(m)]
    losses[p] = [r["loss"] for r in rows[:10]]
    steady = rows[warm:]
    if steady:
        it_s = len(steady) / sum(1 / r["it_per_sec"] for r in steady)
        res[f"train_{p}"] = {"step_s": 1 / it_s, "images_per_s": it_s * batch,
                             "mfu": it_s * batch * 3 * flops / peak,
                             "data_wait": sum(r["data_wait"] for r in steady) / len(steady)}
res["losses_first_steps"] = losses
if "bf16" in losses and "fp32" in losses:
    res["bf16_vs_fp32_max_rel"] = max(abs(a - b) / abs(b) for a, b in zip(losses["bf16"], losses["fp32"]))
t = os.path.join(w, "sample.time")
if os.path.exists(t):
    a, b = map(float, open(t).read().split())
    res["sample"] = {"samples": samples, "steps": sde, "cfg": 1.9, "seconds": b - a,
                     "images_per_s": samples / (b - a), "note": "latents only, process start and model load included"}
json.dump(res, open(out, "w"), indent=1)
print(json.dumps(res, indent=1))
PYEOF
