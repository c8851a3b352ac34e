"""Convert the pickled LPIPS weights to the safetensors files `maetok` loads.

  python scripts/convert_lpips.py --vgg vgg16-397923af.pth --heads vgg.pth --out DIR

* `--vgg`: torchvision's VGG16 ImageNet weights (`vgg16-397923af.pth`, the file
  `torchvision.models.vgg16(weights="IMAGENET1K_V1")` downloads); only `features.*` is kept.
  (timm's `vgg16.tv_in1k` `model.safetensors` has the same `features.*` tensors and needs
  no conversion.)
* `--heads`: the LPIPS v0.1 linear heads: the `lpips` wheel's `lpips/weights/v0.1/vgg.pth`
  (or taming's `vgg.pth`, the file the reference training code downloads; same tensors).
  `lin{k}.model.1.weight` is kept; files that name them `lin{k}.weight` are renamed.

Writes DIR/vgg16.safetensors and DIR/lpips_vgg_heads.safetensors (fp32). Needs only the
project's torch (`torch.load(weights_only=True)`: no code from the pickle runs); the
safetensors files are written directly (8-byte header length, JSON header, raw data).
"""

import argparse
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st_io import load, save_file  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--vgg", required=True)
    p.add_argument("--heads", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    vgg = {k: v.float().contiguous() for k, v in load(a.vgg).items() if k.startswith("features.")}
    if len(vgg) != 26:
        raise SystemExit(f"{a.vgg}: expected 26 VGG16 `features.*` tensors, found {len(vgg)}")
    heads = {}
    for k, v in load(a.heads).items():
        m = re.fullmatch(r"lin(\d)\.(?:model\.1\.)?weight", k)
        if m:
            heads[f"lin{m.group(1)}.model.1.weight"] = v.float().contiguous()
    if len(heads) != 5:
        raise SystemExit(f"{a.heads}: expected 5 LPIPS heads `lin0..4`, found {sorted(heads)}")
    for name, sd in [("vgg16.safetensors", vgg), ("lpips_vgg_heads.safetensors", heads)]:
        save_file(sd, os.path.join(a.out, name))
    print(f"wrote {a.out}/vgg16.safetensors ({len(vgg)} tensors) and "
          f"{a.out}/lpips_vgg_heads.safetensors ({len(heads)} heads)")


if __name__ == "__main__":
    main()
