#!/usr/bin/env bash
# Memory does not grow with the dataset: peak RSS of `maetok preprocess` on 2,000 and on
# 20,000 images (same image sizes, 2 decode threads).
#
#   GEN_PYTHON=<python with tests/fixtures/gen/requirements.txt> benches/preprocess/rss.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${GEN_PYTHON:?set GEN_PYTHON}"
source scripts/env.sh
cargo build --release --locked -p maetok-trainer --bin maetok >&2
out=bench-out/rss
mkdir -p "$out"
[ -d "$out/jpegs-20000" ] || "$PY" benches/preprocess/make_jpegs.py "$out/jpegs-20000" 20000 --small >&2
if [ ! -d "$out/jpegs-2000" ]; then
    mkdir -p "$out/jpegs-2000"
    ls "$out/jpegs-20000" | sed -n 1,2000p | while read -r f; do ln "$out/jpegs-20000/$f" "$out/jpegs-2000/$f"; done
fi
for n in 2000 20000; do
    rm -rf "$out/shards-$n"
    /usr/bin/time -f '%M' -o "$out/rss-$n.txt" ./target/release/maetok --log warn preprocess \
        --input "$out/jpegs-$n" --output "$out/shards-$n" --threads 2 --views 2 --no-progress > "$out/summary-$n.txt"
    echo "$n images: peak RSS $(( $(cat "$out/rss-$n.txt") / 1024 )) MiB; $(grep throughput "$out/summary-$n.txt")"
done
