"""Checks that `maetok preprocess` and the Python reference produced the same pixels and HOG.

    python compare.py OURS_DIR REFERENCE.parquet
"""

import io
import json
import sys

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

ours_dir, ref_path = sys.argv[1], sys.argv[2]
m = json.load(open(f"{ours_dir}/manifest.json"))
ours = {}
for s in m["shards"]:
    t = pq.read_table(f"{ours_dir}/{s['file']}", columns=["key", "view", "image", "hog"])
    for k, v, im, h in zip(t["key"].to_pylist(), t["view"].to_pylist(), t["image"].to_pylist(), t["hog"].to_numpy(zero_copy_only=False)):
        if v == 0:
            ours[k] = (im, np.asarray(h, dtype=np.float32))
ref = pq.read_table(ref_path)
max_px, max_hog, n = 0, 0.0, 0
for k, im, h in zip(ref["key"].to_pylist(), ref["image"].to_pylist(), ref["hog"].to_numpy(zero_copy_only=False)):
    a = np.asarray(Image.open(io.BytesIO(ours[k][0])), dtype=np.int16)
    b = np.asarray(Image.open(io.BytesIO(im)), dtype=np.int16)
    max_px = max(max_px, int(np.abs(a - b).max()))
    hb = np.asarray(h, dtype=np.float32)
    max_hog = max(max_hog, float(np.abs(ours[k][1] - hb).max() / max(np.abs(hb).max(), 1e-12)))
    n += 1
print(json.dumps({"compared": n, "missing": len(ref) - n, "max_pixel_diff": max_px, "max_hog_rel_diff_f16": max_hog}))
