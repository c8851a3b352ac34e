"""Random-valued stand-ins for the downloaded LPIPS and discriminator weights, FOR TIMING
ONLY (a step takes as long with any values): VGG16 `features.*`, the LPIPS v0.1 heads and a
DINO ViT-S/16 backbone, in the layouts `maetok train` loads (docs/training.md names the real
files). Needs only torch.

  python benches/tokenizer/random_weights.py OUT_DIR

Writes OUT_DIR/vgg16.safetensors, OUT_DIR/lpips_vgg_heads.safetensors and
OUT_DIR/dino_vits16.safetensors.
"""

import importlib.util
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "convert_lpips", os.path.join(HERE, "..", "..", "scripts", "convert_lpips.py"))
convert_lpips = importlib.util.module_from_spec(spec)
spec.loader.exec_module(convert_lpips)
save_file = convert_lpips.save_file

VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
LPIPS_CHNS = [64, 128, 256, 512, 512]


def vgg16_features(g):
    out, cin, idx = {}, 3, 0
    for v in VGG16:
        if v == "M":
            idx += 1
            continue
        out[f"features.{idx}.weight"] = torch.randn(v, cin, 3, 3, generator=g) * (2.0 / (9 * cin)) ** 0.5
        out[f"features.{idx}.bias"] = torch.zeros(v)
        cin, idx = v, idx + 2  # conv, relu
    return out


def dino_vits16(g, c=384, depth=12, patch=16, grid=14):
    rn = lambda *s, std=0.02: torch.randn(*s, generator=g) * std  # noqa: E731
    out = {
        "patch_embed.proj.weight": rn(c, 3, patch, patch),
        "patch_embed.proj.bias": torch.zeros(c),
        "cls_token": rn(1, 1, c),
        "pos_embed": rn(1, grid * grid + 1, c),
        "norm.weight": torch.ones(c),
        "norm.bias": torch.zeros(c),
    }
    for i in range(depth):
        p = f"blocks.{i}"
        for n in ("norm1", "norm2"):
            out[f"{p}.{n}.weight"] = torch.ones(c)
            out[f"{p}.{n}.bias"] = torch.zeros(c)
        for n, o, k in (("attn.qkv", 3 * c, c), ("attn.proj", c, c),
                        ("mlp.fc1", 4 * c, c), ("mlp.fc2", c, 4 * c)):
            out[f"{p}.{n}.weight"] = rn(o, k)
            out[f"{p}.{n}.bias"] = torch.zeros(o)
    return out


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    save_file(vgg16_features(g), os.path.join(out_dir, "vgg16.safetensors"))
    heads = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) / c
             for k, c in enumerate(LPIPS_CHNS)}
    save_file(heads, os.path.join(out_dir, "lpips_vgg_heads.safetensors"))
    save_file(dino_vits16(g), os.path.join(out_dir, "dino_vits16.safetensors"))
    print(f"random (timing-only) LPIPS and DINO weights in {out_dir}")


if __name__ == "__main__":
    main()
