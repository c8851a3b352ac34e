#!/usr/bin/env bash
# Device check for data parallelism (issue 12, point 9), on the H200 machine: the tiny
# tokenizer trained for 30 steps at world size 1 through the real NCCL path (communicator,
# gradient buckets, the watchdog) against the same run without the collective layer (and
# against itself, the floor of CUDA's run-to-run differences); step time with and without
# the bucket all-reduce; NCCL's all-reduce of 1 GiB at world size 1 (the local copy, the
# floor of the path). Figures to $OUT/distributed.json, the log beside it.
#
#   [MAETOK_BIN=target/release/maetok] [TORCH_PYTHON=/opt/torch/.venv/bin/python] \
#     benches/gpu/distributed.sh [--dry-run]
#
# --dry-run runs the same steps on the CPU with the CPU backend and small sizes (CI runs
# it). The machine has no Rust: carry a stripped binary (`strip -o bench-out/maetok
# target/release/maetok`, MAETOK_BIN=bench-out/maetok). cudarc loads NCCL as `libnccl.so`;
# the torch wheel ships `nvidia/nccl/lib/libnccl.so.2`, so this script links it under the
# name cudarc looks for and puts the link on LD_LIBRARY_PATH.
set -euo pipefail
cd "$(dirname "$0")/../.."
NAME=distributed
source benches/gpu/lib.sh
if [ "$DRY" = 1 ]; then
    DEVICE=cpu BACKEND=cpu GIB_PARAMS=1048576 STEPS=6
else
    DEVICE=cuda BACKEND=nccl GIB_PARAMS=268435456 STEPS=30
fi
mkdir -p "$W/lib"
nccl="$("$PY" -c 'import os, nvidia.nccl as n; print(os.path.join(list(n.__path__)[0], "lib", "libnccl.so.2"))' 2>/dev/null || true)"
[ -n "$nccl" ] && [ -f "$nccl" ] && ln -sf "$nccl" "$W/lib/libnccl.so"
export LD_LIBRARY_PATH="$(cd "$W/lib" && pwd):$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# Data: the demo's synthetic ImageFolder at 64 px, HOG targets.
part data 120 bash -c "'$BIN' --log-level warn demo --output '$W/demo' --per-class 6 --train-steps 0 >/dev/null \
    && '$BIN' --log-level warn preprocess --input '$W/demo/data/imagefolder' --output '$W/shards' --views 2 --resolution 64 >/dev/null"

config() { # backend → a 30-step tiny config on $DEVICE through that backend
    sed -e "s/^steps = .*/steps = $STEPS/" -e "s/^log_every = .*/log_every = 1/" \
        -e "s/^checkpoint_every = .*/checkpoint_every = 1000000/" \
        -e "s/^sample_every = .*/sample_every = 1000000/" \
        -e "s/^seed = 0/seed = 0\ndevice = \"$DEVICE\"/" \
        configs/tokenizer-tiny.toml > "$W/$1.toml"
    printf '\n[dist]\nbackend = "%s"\n' "$1" >> "$W/$1.toml"
}
config auto
config "$BACKEND"
for run in solo solo-again "$BACKEND"; do
    cfg=auto; [ "$run" = "$BACKEND" ] && cfg="$BACKEND"
    part "train-$run" 240 "$BIN" --log-level warn train tokenizer --config "$W/$cfg.toml" \
        --run-dir "$W/run-$run" --shards "$W/shards"
done
part allreduce-1gib 120 bash -c "'$BIN' --log-level warn bench allreduce --params $GIB_PARAMS --tensors 1 \
    --steps 10 --bucket-mb 4096 --backend $BACKEND --device $DEVICE > '$W/allreduce.json'"

"$PY" - "$W" "$OUTDIR/distributed.json" "$BACKEND" "$DEVICE" "$DRY" <<'PYEOF'
import json, os, statistics, struct, subprocess, sys
import torch
w, out, backend, device, dry = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] == "1"

def load(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    head = json.loads(b[8:8 + n])
    kinds = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64}
    return {k: torch.frombuffer(bytearray(b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]),
                                dtype=kinds[v["dtype"]]).reshape(v["shape"]).float()
            for k, v in head.items() if k != "__metadata__"}

def final(run):
    ck = os.path.join(w, f"run-{run}", "checkpoints")
    steps = sorted(os.listdir(ck)) if os.path.isdir(ck) else []
    return load(os.path.join(ck, steps[-1], "model.safetensors")) if steps else None

def rel(a, b):
    if a is None or b is None:
        return None
    top = max(t.abs().max().item() for t in a.values())
    return max((a[k] - b[k]).abs().max().item() for k in a) / max(top, 1e-12)

def step_time(run):
    p = os.path.join(w, f"run-{run}", "metrics.jsonl")
    if not os.path.exists(p):
        return None
    rows = [json.loads(l) for l in open(p)][5:]
    return 1.0 / statistics.median(r["it_per_sec"] for r in rows) if rows else None

def gpu():
    try:
        q = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                           capture_output=True, text=True, timeout=20).stdout.strip()
        return q
    except Exception as e:
        return f"nvidia-smi: {e}"

solo, again, layered = final("solo"), final("solo-again"), final(backend)
res = {
    "dry_run": dry,
    "device": device,
    "backend": backend,
    "gpu": gpu() if not dry else None,
    "torch": torch.__version__,
    "torch_cuda": torch.version.cuda,
    "parts": {f[:-7]: open(os.path.join(w, f)).read().strip() for f in sorted(os.listdir(w)) if f.endswith(".status")},
    "weights_rel_diff_layer_vs_none": rel(solo, layered),
    "weights_rel_diff_none_vs_none": rel(solo, again),
    "step_s_without_collectives": step_time("solo"),
    "step_s_with_bucket_allreduce": step_time(backend),
}
try:
    res["allreduce"] = json.load(open(os.path.join(w, "allreduce.json")))
except Exception as e:
    res["allreduce"] = f"missing: {e}"
json.dump(res, open(out, "w"), indent=2)
print(json.dumps(res, indent=2))
bad = [k for k, v in res["parts"].items() if v != "ok"]
if dry and (bad or res["weights_rel_diff_layer_vs_none"] != 0.0):
    sys.exit(f"dry run: failed parts {bad}, weights differ by {res['weights_rel_diff_layer_vs_none']}")
PYEOF
