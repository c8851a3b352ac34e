#!/usr/bin/env bash
# Preprocess benchmark: maetok vs the Python reference on the same real-size JPEGs, one
# worker thread each, in one run; then a check that both produced the same pixels and HOG.
#
#   MAETOK_REF_DIR=<git archive f4d60a0 of the official code> GEN_PYTHON=<python with
#   tests/fixtures/gen/requirements.txt> benches/preprocess/run.sh [N=500]
#
# Results go to bench-out/preprocess.json; docs/benchmarks.md records them.
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${1:-500}"
: "${MAETOK_REF_DIR:?set MAETOK_REF_DIR to the official MAETok code (utils/hog.py)}"
PY="${GEN_PYTHON:?set GEN_PYTHON to a python with tests/fixtures/gen/requirements.txt + pyarrow}"
source scripts/env.sh
cargo build --release --locked -p maetok-trainer --bin maetok >&2
out=bench-out/preprocess
rm -rf "$out" && mkdir -p "$out"
"$PY" benches/preprocess/make_jpegs.py "$out/jpegs" "$N" >&2
cat "$out"/jpegs/*.jpg > /dev/null   # warm the page cache for both sides

echo "python reference (1 thread)..." >&2
ref=$("$PY" benches/preprocess/reference.py "$out/jpegs" "$out/reference.parquet")
echo "maetok preprocess (--threads 1)..." >&2
/usr/bin/time -f '%e %U %S %M' -o "$out/time.txt" ./target/release/maetok --log warn preprocess \
    --input "$out/jpegs" --output "$out/ours" --threads 1 --shard-rows 100000 --no-progress > "$out/ours.txt"
read -r wall user sys rss_kb < "$out/time.txt"
cmp=$("$PY" benches/preprocess/compare.py "$out/ours" "$out/reference.parquet")
python3 - "$ref" "$wall" "$user" "$sys" "$rss_kb" "$cmp" "$N" <<'PYEOF' | tee bench-out/preprocess.json
import json, sys
ref = json.loads(sys.argv[1]); wall, user, sys_t, rss = map(float, sys.argv[2:6]); cmp = json.loads(sys.argv[6]); n = int(sys.argv[7])
ours_cpu = user + sys_t
r = {
    "images": n,
    "reference": {"images_per_s": n / ref["seconds"], "cpu_s_per_image": ref["cpu_seconds"] / n},
    "maetok": {"images_per_s": n / wall, "cpu_s_per_image": ours_cpu / n, "peak_rss_mb": rss / 1024},
    "ratio_wall": ref["seconds"] / wall,
    "ratio_cpu": ref["cpu_seconds"] / ours_cpu,
    "check": cmp,
}
print(json.dumps(r, indent=1))
PYEOF
