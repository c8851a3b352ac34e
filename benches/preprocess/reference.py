"""The Python reference for `maetok preprocess`, doing the same work on one thread:
Pillow decode + convert("RGB") + ADM center crop (spec section 6), the official HOG in torch
(utils/hog.py at f4d60a0, imported unmodified from MAETOK_REF_DIR), PNG encoding of the crop
(Pillow, zlib level 1), and a zstd Parquet write with pyarrow (f16 HOG, rows in sorted key
order, 256-row row groups).

    MAETOK_REF_DIR=... python reference.py IN_DIR OUT.parquet
Prints a JSON line: images, seconds (wall), cpu_seconds.
"""

import io
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image

sys.path.insert(0, os.environ["MAETOK_REF_DIR"])
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "gen"))
from gen_images import adm_center_crop  # noqa: E402  (the spec section 6 crop, one copy)
from utils.hog import HOGGenerator  # noqa: E402


def main():
    torch.set_num_threads(1)
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    src, out = Path(sys.argv[1]), sys.argv[2]
    files = sorted(p for p in src.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    hog = HOGGenerator()
    t0, c0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    writer = None
    keys, images, hogs = [], [], []

    def flush():
        nonlocal writer, keys, images, hogs
        if not keys:
            return
        flat = pa.array(np.concatenate(hogs).astype(np.float16).ravel(), type=pa.float16())
        table = pa.table({
            "key": pa.array(keys, pa.string()),
            "image": pa.array(images, pa.binary()),
            "hog": pa.FixedSizeListArray.from_arrays(flat, 256 * 108),
        })
        if writer is None:
            writer = pq.ParquetWriter(out, table.schema, compression="zstd", compression_level=3)
        writer.write_table(table, row_group_size=256)
        keys, images, hogs = [], [], []

    with torch.no_grad():
        for p in files:
            img = Image.open(p)
            img.load()
            crop = np.array(adm_center_crop(img.convert("RGB"), 256))
            x = torch.from_numpy(crop).permute(2, 0, 1).contiguous().float().div(255)
            x = ((x - 0.5) / 0.5).unsqueeze(0)
            feats = hog(x)[0].numpy()
            buf = io.BytesIO()
            Image.fromarray(crop).save(buf, format="PNG", compress_level=1)
            keys.append(p.stem)
            images.append(buf.getvalue())
            hogs.append(feats[None])
            if len(keys) == 256:
                flush()
    flush()
    writer.close()
    c1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
    print(json.dumps({"images": len(files), "seconds": time.perf_counter() - t0, "cpu_seconds": cpu}))


if __name__ == "__main__":
    main()
