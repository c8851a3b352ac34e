"""Convert a pickled PyTorch checkpoint (`.pt`/`.pth`) to the `model.safetensors` maetok reads.

  python scripts/pth_to_safetensors.py IN.pth OUT.safetensors [--key ema] [--strip module.]

* `--key`: the entry holding the state dict (official MAETok training checkpoints hold
  `model`, `ema` and `optimizer`; pick `ema` for the averaged weights). Without it: the file
  itself, or its `state_dict` entry.
* `--strip`: a prefix removed from every name (DDP's `module.`, torch.compile's `_orig_mod.`);
  repeatable.

Non-tensor entries and integer buffers are dropped; floats are written as fp32. The file is
read with `torch.load(weights_only=True)` (no code from the pickle runs) and written under a
temporary name, then renamed. Put the model's `config.json` beside the output to load it
with `--checkpoint`.
"""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st_io import load, save_file  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--key")
    p.add_argument("--strip", action="append", default=[])
    a = p.parse_args()
    sd = load(a.input, a.key)
    if not isinstance(sd, dict):
        raise SystemExit(f"{a.input}: not a state dict ({type(sd).__name__})")
    out, dropped = {}, []
    for name, t in sd.items():
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            dropped.append(name)
            continue
        for prefix in a.strip:
            if name.startswith(prefix):
                name = name[len(prefix):]
        if name in out:
            raise SystemExit(f"{a.input}: two tensors become `{name}` after --strip")
        out[name] = t
    if not out:
        raise SystemExit(f"{a.input}: no floating-point tensors (entries: {sorted(sd)[:10]})")
    save_file(out, a.output)
    print(f"wrote {a.output}: {len(out)} tensors" + (f", dropped {len(dropped)} non-float entries" if dropped else ""))


if __name__ == "__main__":
    main()
