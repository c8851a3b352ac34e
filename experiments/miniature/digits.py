"""Writes scikit-learn's bundled handwritten digits (`load_digits`: 1,797 real 8x8 scans of
16 grey levels, 10 classes, from the UCI optical-recognition set) as two ImageFolders,
upscaled to SIZE px RGB with bicubic resampling, so `maetok preprocess` reads them like any
labelled photo folder:

    OUT/train/<digit>/<index>.png   (4 of every 5 images of each class)
    OUT/test/<digit>/<index>.png    (the 5th: images no tokenizer trains on)

Usage: python digits.py OUT [SIZE]   (SIZE defaults to 64)
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits


def main() -> None:
    out = Path(sys.argv[1])
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    digits = load_digits()
    seen = {}
    for i, (img, label) in enumerate(zip(digits.images, digits.target)):
        # 0..16 ink -> white paper, black ink (as scanned).
        grey = (255 - np.rint(img * 255.0 / 16.0)).astype(np.uint8)
        big = Image.fromarray(grey, mode="L").resize((size, size), Image.BICUBIC)
        k = seen.get(label, 0)
        seen[label] = k + 1
        split = "test" if k % 5 == 4 else "train"
        d = out / split / str(label)
        d.mkdir(parents=True, exist_ok=True)
        big.convert("RGB").save(d / f"{i:04d}.png")
    n_test = sum((v + 0) // 5 for v in seen.values())
    print(f"{len(digits.images)} digits at {size} px: {len(digits.images) - n_test} train, {n_test} test -> {out}")


if __name__ == "__main__":
    main()
