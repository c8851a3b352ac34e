"""Real-size JPEG test sets for the preprocess benchmarks.

Crops, rescales and re-encodes scikit-image's sample photographs to ImageNet-like sizes
(the common 500x375 / 375x500 / 500x333 / 500x500 and a tail of larger and smaller images)
at JPEG qualities 75-95, deterministically from the seed.

    python make_jpegs.py OUT_DIR N [--small]     (--small: 320x240-ish images for memory runs)
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data as skdata

PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "camera", "coins", "horse"]
SIZES = [(500, 375)] * 6 + [(375, 500)] * 3 + [(500, 333)] * 3 + [(500, 500)] * 2 + [(640, 480), (800, 600), (1024, 768), (400, 300), (333, 500), (1280, 960)]


def sources():
    out = []
    for name in PHOTOS:
        arr = getattr(skdata, name)()
        img = Image.fromarray(arr).convert("RGB")
        out.append(img)
    return out


def main():
    out = Path(sys.argv[1])
    n = int(sys.argv[2])
    small = "--small" in sys.argv
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    srcs = sources()
    for i in range(n):
        src = srcs[i % len(srcs)]
        w, h = (320, 240) if small else SIZES[rng.integers(len(SIZES))]
        # A random crop of the source with the target's aspect ratio, mirrored half the time.
        sw, sh = src.size
        scale = rng.uniform(0.5, 1.0)
        cw = int(min(sw, sh * w / h) * scale)
        ch = int(cw * h / w)
        left = int(rng.integers(0, sw - cw + 1))
        top = int(rng.integers(0, sh - ch + 1))
        img = src.crop((left, top, left + cw, top + ch)).resize((w, h), Image.LANCZOS)
        if rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        img.save(out / f"img_{i:06d}.jpg", quality=int(rng.integers(75, 96)))
    print(f"wrote {n} JPEGs to {out}")


if __name__ == "__main__":
    main()
