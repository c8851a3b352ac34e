#!/usr/bin/env bash
# The paper in miniature (issue 14; what it found is in docs/experiments.md). A plain
# autoencoder (ae.toml) and MAETok (maetok.toml: mask modeling + the HOG target) trained
# with the same budget on scikit-learn's real handwritten digits upscaled to 128 px; then,
# for each tokenizer and seed: PSNR of the held-out test digits, the latents of the training
# digits, and a tiny SiT (sit.toml) trained on them; then linear-probe accuracy and GMM NLL
# against K of every latent folder (`maetok eval latents`, one PCA dimension for all) and
# the SiT loss curves on one picture (`maetok plot`). Not part of CI.
#
# Usage: experiments/miniature/run.sh [OUT] [SEEDS] [TOKENIZER_STEPS] [SIT_STEPS]
#   defaults: experiments-out/miniature "0 1 2" 3000 3000 (about 45 minutes on 2 CPU cores)
# Every step is skipped when its output exists, so a killed run resumes.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
out=${1:-experiments-out/miniature}
seeds=${2:-"0 1 2"}
tsteps=${3:-3000}
ssteps=${4:-3000}
here=experiments/miniature
source scripts/env.sh
bin=${MAETOK_BIN:-target/release/maetok}
[ -x "$bin" ] || cargo build --release --locked -p maetok-trainer --bin maetok
mkdir -p "$out"
log() { echo "[miniature $(date +%H:%M:%S)] $*"; }

# 1. The digits, through scikit-learn's bundled copy (installed beside the project's venv,
#    which stays as scripts/requirements.txt pins it).
side="${XDG_CACHE_HOME:-$HOME/.cache}/maetok/experiments-py"
if [ ! -f "$side/.ready" ]; then
    log "installing scikit-learn into $side"
    python -m pip install --quiet --no-deps --target "$side" \
        scikit-learn==1.9.1 scipy==1.17.1 joblib==1.6.0 threadpoolctl==3.8.0 narwhals==2.29.0 cloudpickle==3.1.2
    touch "$side/.ready"
fi
if [ ! -d "$out/data/test" ]; then
    PYTHONPATH="$side" python "$here/digits.py" "$out/data.tmp" 128
    mv "$out/data.tmp" "$out/data"
fi
# Two views (the crop and its flip), as the demo and the paper's loader store them.
[ -f "$out/shards/train/__maetok__/manifest.json" ] ||
    "$bin" preprocess --input "$out/data/train" --output "$out/shards/train" --resolution 128 --views 2

configure() { # config seed steps -> a copy with them set
    sed -e "s|^shards = .*|shards = \"$out/shards/train\"|" \
        -e "s|^steps = .*|steps = $3|" -e "s|^seed = .*|seed = $2|" "$1"
}
mkdir -p "$out/configs"
plot_runs=()
latent_dirs=()
for seed in $seeds; do
    for arm in ae maetok; do
        name=$arm-s$seed
        run=$out/runs/tokenizer-$name
        cfg=$out/configs/$name.toml
        configure "$here/$arm.toml" "$seed" "$tsteps" >"$cfg"
        if [ ! -f "$run/checkpoints/step-$(printf %07d "$tsteps")/model.safetensors" ]; then
            log "$name: tokenizer, $tsteps steps"
            "$bin" train tokenizer --config "$cfg" --run-dir "$run"
        fi
        tok=$run/checkpoints/$(cat "$run/latest")
        [ -f "$out/recon/$name/metrics.json" ] ||
            "$bin" reconstruct --checkpoint "$tok" --input "$out/data/test" --output "$out/recon/$name"
        [ -f "$out/latents/$name/__maetok__/manifest.json" ] ||
            "$bin" encode --checkpoint "$tok" --input "$out/data/train" --output "$out/latents/$name"
        latent_dirs+=(--latents "$out/latents/$name")
        srun=$out/runs/sit-$name
        configure "$here/sit.toml" "$seed" "$ssteps" >"$out/configs/sit-$name.toml"
        if [ ! -f "$srun/checkpoints/step-$(printf %07d "$ssteps")/model.safetensors" ]; then
            log "$name: SiT, $ssteps steps"
            "$bin" train sit --config "$out/configs/sit-$name.toml" --run-dir "$srun" \
                --latents "$out/latents/$name" --tokenizer "$tok"
        fi
        plot_runs+=(--run "$name=$srun")
    done
done

log "linear probe and GMM modes of $(( ${#latent_dirs[@]} / 2 )) latent folders"
"$bin" eval latents "${latent_dirs[@]}" --output "$out/eval/latents" --k 1,2,4,8,16,32,64 --n-init 3
"$bin" plot "${plot_runs[@]}" --key loss --smooth 8 --tail 0.2 \
    --title "tiny SiT velocity loss on each tokenizer's digit latents (moving average of 8)" \
    --output "$out/eval/sit-loss.png"
log "done: $out/eval/latents/report.md, $out/eval/sit-loss.png(.json), $out/recon/*/metrics.json"
