#!/usr/bin/env bash
# Memory over a long SiT run (issue 13, point 5): SiT-mini on random 128 × 32 latents at
# batch 4 for STEPS steps (default 10,000), the resident memory logged every 500 steps
# (metrics.jsonl `rss_mb`, read from /proc/self/statm), step folders every 2,500 steps, a
# sample grid at the end. Prints the logged RSS and its drift after the first window.
#
#   benches/sit/memory.sh [STEPS=10000]
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${1:-10000}"
source scripts/env.sh
BIN=./target/release/maetok
out=bench-out/sit-memory
rm -rf "$out" && mkdir -p "$out"
"$BIN" --log warn bench latents --output "$out/latents" --images 1024
cat > "$out/mini.toml" <<TOML
[model]
preset = "SiT-mini/1"
num_classes = 1000
[data]
normalize = "none"
batch_size = 4
[train]
steps = $STEPS
device = "cpu"
log_every = 500
checkpoint_every = 2500
keep_checkpoints = 2
milestone_every = 5000
sample_every = 0
TOML
OMP_NUM_THREADS="${THREADS:-1}" "$BIN" --log warn train sit --config "$out/mini.toml" \
    --run-dir "$out/run" --latents "$out/latents" > /dev/null
python3 - "$out/run/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for r in rows:
    print(f"step {r['step']:>6}  rss {r['rss_mb']:8.1f} MiB  {r['it_per_sec']:7.1f} it/s")
rss = [r["rss_mb"] for r in rows]
print(f"after step {rows[0]['step']}: min {min(rss[1:]):.1f}, max {max(rss[1:]):.1f} MiB; "
      f"last - second window {rss[-1] - rss[1]:+.1f} MiB")
PY
