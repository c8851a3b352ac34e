#!/usr/bin/env bash
# Device check for the tokenizer (GPU machine; nothing here needs Rust): MAETok-B/128
# stage-1 training, the paper's full step (mask modeling, pixel decoder, HOG/DINOv2/SigLIP
# decoders, LPIPS, the DINO GAN switched on from step 1), at batch 64 and 256 px, once under
# bf16 autocast (`precision = "auto"` on CUDA) and once in fp32. Prints step time, images/s,
# model FLOPs utilisation, and the first steps' losses of both runs side by side (bf16 must
# follow fp32 to about 1 %).
#
# LPIPS and discriminator weights are random stand-ins (random_weights.py; a step takes as
# long with any values); the shards are the demo's synthetic images with random-teacher
# targets, at the paper's resolution and target layout.
#
#   [DEVICE=cuda] [MAETOK_BIN=target/release/maetok] [TORCH_PYTHON=/opt/torch/.venv/bin/python] \
#   [PRECISIONS="bf16 fp32"] benches/tokenizer/gpu.sh [STEPS=60] [BATCH=64]
#
# The release binary (~46 MB with our crates' line tables) fits the device's 64 MiB carry
# limit, but a stripped copy (~19 MB) travels faster: `strip -o bench-out/maetok
# target/release/maetok`, carry `bench-out/maetok`, run with MAETOK_BIN=bench-out/maetok.
#
# (Checked on the CPU with DEVICE=cpu PRECISIONS=fp32 and a few steps at batch 2: CPU bf16
# autocast of the full model is far too slow on CPUs without bf16 units.)
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${1:-60}"
BATCH="${2:-64}"
DEVICE="${DEVICE:-cuda}"
PY="${TORCH_PYTHON:-/opt/torch/.venv/bin/python}"
BIN="${MAETOK_BIN:-target/release/maetok}"
W="${OUT:-bench-out}/gpu"
torch_lib="$("$PY" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
mkdir -p "$W"

"$PY" benches/tokenizer/random_weights.py "$W/weights"
if [ ! -f "$W/demo/shards/wds/manifest.json" ]; then
    "$BIN" --log warn demo --output "$W/demo" --per-class 2 --tars 4 --per-tar 32 \
        --train-steps 0 >/dev/null
fi

for precision in ${PRECISIONS:-bf16 fp32}; do
    sed -e "s/^batch_size = .*/batch_size = $BATCH/" \
        -e "s#^lpips_vgg = .*#lpips_vgg = \"$W/weights/vgg16.safetensors\"#" \
        -e "s#^lpips_heads = .*#lpips_heads = \"$W/weights/lpips_vgg_heads.safetensors\"#" \
        -e "s#^backbone = .*#backbone = \"$W/weights/dino_vits16.safetensors\"#" \
        -e "s/^disc_start = .*/disc_start = 0/" \
        -e "s/^device = .*/device = \"$DEVICE\"\nprecision = \"$precision\"/" \
        -e "s/^log_every = .*/log_every = 1/" \
        -e "s/^checkpoint_every = .*/checkpoint_every = 1000000/" \
        -e "s/^sample_every = .*/sample_every = 1000000/" \
        configs/maetok-b-128.toml > "$W/$precision.toml"
    rm -rf "$W/run-$precision"
    echo "maetok-b-128, $precision, batch $BATCH, $STEPS steps on $DEVICE..." >&2
    "$BIN" --log warn train tokenizer --config "$W/$precision.toml" --run "$W/run-$precision" \
        --shards "$W/demo/shards/wds" --max-steps "$STEPS" >/dev/null
done

"$PY" - "$W" "$BATCH" "$DEVICE" <<'PYEOF'
import json, sys
w, batch, device = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def rows(p):
    return [json.loads(l) for l in open(f"{w}/run-{p}/metrics.jsonl")]

# Model FLOPs of one image's forward (matrix products and attention; 3x for forward +
# backward): encoder (256 image + 128 latent + 1 cls tokens), pixel decoder (256 + 128),
# three aux decoders (192 wide, 3 layers, 256 + 128 + 1 tokens). LPIPS and the
# discriminator are left out, as MFU counts the model trained.
def vit(d, depth, mlp, tokens):
    return depth * tokens * 2 * (4 * d * d + 2 * d * mlp) + depth * 2 * 2 * tokens * tokens * d

fwd = vit(768, 12, 3072, 385) + vit(768, 12, 3072, 384) + 3 * vit(192, 3, 768, 385)
fwd += 256 * 2 * (768 * 768 * 2) + 128 * 2 * 768 * 32 * 2  # patch embed + to_pixel, quant convs
train_flops = 3 * fwd * batch
peak = {"cuda": 989.4e12}.get(device.split(":")[0])  # H200 SXM dense bf16
import os
ran = [p for p in ("bf16", "fp32") if os.path.exists(f"{w}/run-{p}/metrics.jsonl")]
for p in ran:
    r = rows(p)
    steady = r[min(10, len(r) // 2):]
    its = sum(x["it_per_sec"] for x in steady) / len(steady)
    line = {"precision": p, "batch": batch, "steps": len(r), "sec_per_step": 1 / its,
            "images_per_sec": its * batch, "data_wait": sum(x["data_wait"] for x in steady) / len(steady),
            "model_tflop_per_step": train_flops / 1e12}
    if peak and p == "bf16":
        line["mfu"] = train_flops * its / peak
    print(json.dumps(line))
a, b = (rows("fp32"), rows("bf16")) if len(ran) == 2 else ([], [])
for x, y in list(zip(a, b))[:5]:
    rel = abs(x["loss"] - y["loss"]) / abs(x["loss"])
    print(json.dumps({"step": x["step"], "loss_fp32": x["loss"], "loss_bf16": y["loss"], "rel": rel}))
PYEOF
