"""Convert an official SiT training checkpoint to a SiT checkpoint folder.

  python scripts/convert_sit.py IN.pt OUT_DIR [--raw] [--num-heads N]

IN.pt is what the official `train/train_sit.py` saves every `--checkpointing-steps`
(`NNNNNNN.pt`: a dict with `model`, `ema`, `opt`, `args`, `steps`). OUT_DIR receives
`model.safetensors` (the EMA weights unless --raw; fp32) and `config.json` holding the
official `SiT` constructor's arguments as `PyTorchModelHubMixin.save_pretrained` writes
them, so the folder loads in `maetok sample --model OUT_DIR` and with the official
`SiT.from_pretrained(OUT_DIR)`.

The architecture is read off the tensors (width, depth, tokens, channels, classes, MLP
ratio, qk-norm); the head count, which no tensor shows, comes from `args.model`
(`SiT-XL/1` → 16) or --num-heads. Needs only the project's torch: the checkpoint is read
with `weights_only=True` (argparse.Namespace, the `args` entry, is allowed explicitly; no
other code from the pickle runs).
"""

import argparse
import json
import os
import re
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st_io import save_file  # noqa: E402

HEADS = {"XL": 16, "L": 16, "B": 12, "S": 6}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("out")
    p.add_argument("--raw", action="store_true", help="the raw weights, not the EMA")
    p.add_argument("--num-heads", type=int, help="when args.model does not name a SiT size")
    a = p.parse_args()
    torch.serialization.add_safe_globals([argparse.Namespace])
    ck = torch.load(a.checkpoint, map_location="cpu", weights_only=True)
    key = "model" if a.raw else "ema"
    if not isinstance(ck, dict) or key not in ck:
        have = sorted(ck) if isinstance(ck, dict) else type(ck).__name__
        raise SystemExit(f"{a.checkpoint}: no `{key}` entry (it has {have}); is it a train_sit.py checkpoint?")
    sd = {re.sub(r"^(module\.|_orig_mod\.)+", "", k): v for k, v in ck[key].items()}
    args = ck.get("args")
    args = vars(args) if isinstance(args, argparse.Namespace) else dict(args or {})

    need = ["x_embedder.weight", "pos_embed", "y_embedder.embedding_table.weight", "blocks.0.mlp.fc1.weight"]
    missing = [k for k in need if k not in sd]
    if missing:
        raise SystemExit(f"{a.checkpoint}: `{key}` lacks {missing}: not a 1-D (vae_1d) SiT")
    hidden, in_ch = sd["x_embedder.weight"].shape
    tokens = sd["pos_embed"].shape[1]
    depth = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    rows = sd["y_embedder.embedding_table.weight"].shape[0]
    num_classes = int(args.get("num_classes", rows - 1))
    if rows not in (num_classes, num_classes + 1):
        raise SystemExit(f"label table has {rows} rows for {num_classes} classes")
    mlp_ratio = sd["blocks.0.mlp.fc1.weight"].shape[0] / hidden
    heads = a.num_heads
    if heads is None:
        m = re.fullmatch(r"SiT-(XL|L|B|S)/\d+", str(args.get("model", "")))
        if not m:
            raise SystemExit(f"args.model = {args.get('model')!r} names no SiT size: pass --num-heads")
        heads = HEADS[m.group(1)]
    if hidden % heads:
        raise SystemExit(f"width {hidden} does not split into {heads} heads")

    config = {
        "class_dropout_prob": 0.1 if rows == num_classes + 1 else 0.0,
        "decoder_hidden_size": hidden,
        "depth": depth,
        "hidden_size": hidden,
        "in_channels": in_ch,
        "input_size": tokens,
        "license": "apache-2.0",
        "mlp_ratio": mlp_ratio,
        "num_classes": num_classes,
        "num_heads": heads,
        "patch_size": 1,
        "path_type": args.get("path_type", "linear"),
        "qk_norm": "blocks.0.attn.q_norm.weight" in sd,
        "repo_url": "https://github.com/Hhhhhhao/continuous_tokenizer",
        "tags": ["arxiv:2412.10958", "image-generation", "32 tokens", "SiT"],
        "use_cfg": float(args.get("cfg_prob", 0.1)) > 0,
        "vae_1d": True,
    }
    # train_sit.py's block kwargs, as its SiT(...) received them.
    for k in ("fused_attn", "flash_attn"):
        if k in args:
            config[k] = args[k]
    if "fused_attn" not in config:
        config["fused_attn"] = True  # SDPA: runs anywhere, flash_attn package or not
    os.makedirs(a.out, exist_ok=True)
    save_file(sd, os.path.join(a.out, "model.safetensors"))
    tmp = os.path.join(a.out, ".config.json.tmp")
    with open(tmp, "w") as f:
        json.dump(config, f, sort_keys=True, indent=2)
    os.replace(tmp, os.path.join(a.out, "config.json"))
    print(f"{a.checkpoint} ({'raw' if a.raw else 'EMA'} weights, step {ck.get('steps', '?')}): "
          f"SiT {hidden} wide, {depth} deep, {heads} heads, {tokens} x {in_ch} tokens, "
          f"{num_classes} classes -> {a.out}")


if __name__ == "__main__":
    main()
