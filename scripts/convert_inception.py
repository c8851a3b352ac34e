"""Convert pytorch-fid's FID Inception weights to the safetensors file `maetok eval` loads.

  python scripts/convert_inception.py pt_inception-2015-12-05-6726825d.pth OUT.safetensors

The input is the file pytorch-fid 0.3.0 downloads on first use
(https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth,
the 2015-12-05 TensorFlow Inception graph's weights ported to PyTorch; about 92 MB). Every
tensor keeps its name (`Conv2d_1a_3x3.conv.weight`, `Mixed_7c.branch_pool.bn.running_var`,
`fc.weight`, ...); the BatchNorm step counts (`*.num_batches_tracked`) are dropped. The file
is checked to hold the 472 tensors of the FID network (94 convolutions with their
BatchNorms, and the 1008-way classifier). Needs only the project's torch
(`torch.load(weights_only=True)`: no code from the pickle runs).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st_io import load, save_file  # noqa: E402

EXPECTED = 94 * 5 + 2


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    src, out = sys.argv[1], sys.argv[2]
    sd = {k: v for k, v in load(src).items() if not k.endswith("num_batches_tracked")}
    convs = [k for k in sd if k.endswith(".conv.weight")]
    fc = tuple(sd["fc.weight"].shape) if "fc.weight" in sd else None
    if len(sd) != EXPECTED or len(convs) != 94 or fc != (1008, 2048):
        raise SystemExit(
            f"{src}: expected the FID Inception's {EXPECTED} tensors (94 convolutions, "
            f"fc.weight 1008 x 2048), found {len(sd)} ({len(convs)} convolutions); is this "
            "pytorch-fid's pt_inception-2015-12-05-6726825d.pth?")
    save_file(sd, out)
    print(f"wrote {out}: {len(sd)} tensors, "
          f"{sum(v.numel() for v in sd.values()):,} values")


if __name__ == "__main__":
    main()
