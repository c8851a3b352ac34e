"""Reading pickled checkpoints safely and writing safetensors files without the
`safetensors` package (the project's environment has torch only): the scripts' shared I/O.
"""

import json
import os
import struct

import torch


def save_file(tensors, path):
    """A safetensors file of fp32 tensors, names sorted, written to a temporary name first
    and renamed, so a killed conversion never leaves a partial file under the final name."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        data = tensors[name].detach().to(torch.float32).contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), "." + os.path.basename(path) + ".tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def load(path, key=None):
    """A state dict from a `.pt`/`.pth` file (`weights_only=True`: no code from the pickle
    runs): the file itself, its `key` entry when given, else its `state_dict` entry."""
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if key is not None:
        if not isinstance(sd, dict) or key not in sd:
            have = sorted(sd) if isinstance(sd, dict) else type(sd).__name__
            raise SystemExit(f"{path}: no `{key}` entry (it has {have})")
        sd = sd[key]
    elif isinstance(sd, dict) and "state_dict" in sd:
        sd = sd["state_dict"]
    return sd
