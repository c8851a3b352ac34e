"""Teacher benchmark, Python side (timm 1.0.12 / transformers, the references).

    bench.py weights ARCH OUT.safetensors          random timm weights of ARCH (every block drawn
                                                     so it matters), saved in timm layout
    bench.py timm ARCH WEIGHTS IMAGES OUT BATCH    timm built at img_size=256, patch_size=16 from
                                                     WEIGHTS (its own 14->16 resampling), run on
                                                     Pillow's ADM crops of IMAGES in sorted order;
                                                     prints a JSON line with images/s
    bench.py hf WEIGHTS IMAGES OUT BATCH RES       HF transformers Dinov2Model with the same
                                                     (timm-layout) weights mapped to HF names, at
                                                     its native patch 14 and RES px; images/s
    bench.py compare OURS REF                      max|d|/max|ref| between two feature files
    bench.py storage F16_DIR INT8_DIR NAME         bytes per image of teacher NAME's column(s) in
                                                     two shard folders, and the per-token cosine
                                                     similarity of int8 (dequantised) to f16

Timing covers the forward passes only (model load and decoding excluded), like
`maetok teacher features`, with torch's thread count left at the machine's cores as
libtorch does in maetok.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import safetensors.torch
import timm
import torch
from PIL import Image


def adm_crop(img, r=256):
    while min(*img.size) >= 2 * r:
        img = img.resize(tuple(x // 2 for x in img.size), resample=Image.BOX)
    scale = r / min(*img.size)
    img = img.resize(tuple(round(x * scale) for x in img.size), resample=Image.BICUBIC)
    arr = np.array(img)
    y, x = (arr.shape[0] - r) // 2, (arr.shape[1] - r) // 2
    return arr[y:y + r, x:x + r]


def randomize(model):
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "gamma" in name:
                p.copy_(0.5 + 0.5 * torch.rand(p.shape, generator=g))
            elif name in ("pos_embed", "cls_token", "reg_token"):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            elif p.dim() <= 1:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)


def run_timed(side, images, res, batch, out, forward):
    """ADM crops of the JPEGs in `images` (sorted), ImageNet-normalised, through `forward` in
    batches; only the forward passes are timed. Writes the features, prints a JSON line."""
    files = sorted(p for p in Path(images).iterdir() if p.suffix == ".jpg")
    x = torch.from_numpy(np.stack([adm_crop(Image.open(f).convert("RGB"), res) for f in files]))
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    outs = []
    t0 = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(files), batch):
            outs.append(forward((x[i:i + batch].permute(0, 3, 1, 2).float() / 255 - mean) / std))
    secs = time.perf_counter() - t0
    safetensors.torch.save_file({"features": torch.cat(outs).contiguous()}, out)
    print(json.dumps(dict(side=side, images=len(files), secs=secs, images_per_s=len(files) / secs,
                          threads=torch.get_num_threads())))


def main():
    cmd = sys.argv[1]
    if cmd == "weights":
        arch, out = sys.argv[2:4]
        model = timm.create_model(arch, pretrained=False, num_classes=0)
        randomize(model)
        safetensors.torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out)
    elif cmd == "timm":
        arch, weights, images, out, batch = sys.argv[2:7]
        batch = int(batch)
        model = timm.create_model(arch, pretrained=True, num_classes=0, img_size=256, patch_size=16,
                                  pretrained_cfg_overlay=dict(file=weights)).eval()
        run_timed("timm", images, 256, batch, out,
                  lambda xb: model.forward_features(xb)[:, model.num_prefix_tokens:])
    elif cmd == "hf":
        import transformers
        weights, images, out, batch, res = sys.argv[2:7]
        batch, res = int(batch), int(res)
        sd = safetensors.torch.load_file(weights)
        c = sd["cls_token"].shape[-1]
        depth = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
        cfg = transformers.Dinov2Config(hidden_size=c, num_hidden_layers=depth, num_attention_heads=c // 64,
                                        mlp_ratio=sd["blocks.0.mlp.fc1.weight"].shape[0] // c,
                                        image_size=518, patch_size=14, attn_implementation="sdpa")
        hf = {"embeddings.cls_token": sd["cls_token"], "embeddings.mask_token": torch.zeros(1, c),
              "embeddings.position_embeddings": sd["pos_embed"],
              "embeddings.patch_embeddings.projection.weight": sd["patch_embed.proj.weight"],
              "embeddings.patch_embeddings.projection.bias": sd["patch_embed.proj.bias"],
              "layernorm.weight": sd["norm.weight"], "layernorm.bias": sd["norm.bias"]}
        for i in range(depth):
            s_, t = f"blocks.{i}", f"encoder.layer.{i}"
            for p in ("weight", "bias"):
                q, k, v = sd[f"{s_}.attn.qkv.{p}"].chunk(3)
                # transformers 5 names the projections q/k/v/o_proj in memory (hub files keep
                # attention.attention.query/... and are renamed on load).
                hf[f"{t}.attention.q_proj.{p}"], hf[f"{t}.attention.k_proj.{p}"] = q, k
                hf[f"{t}.attention.v_proj.{p}"] = v
                hf[f"{t}.attention.o_proj.{p}"] = sd[f"{s_}.attn.proj.{p}"]
                for n in ("norm1", "norm2"):
                    hf[f"{t}.{n}.{p}"] = sd[f"{s_}.{n}.{p}"]
                for n in ("fc1", "fc2"):
                    hf[f"{t}.mlp.{n}.{p}"] = sd[f"{s_}.mlp.{n}.{p}"]
            hf[f"{t}.layer_scale1.lambda1"] = sd[f"{s_}.ls1.gamma"]
            hf[f"{t}.layer_scale2.lambda1"] = sd[f"{s_}.ls2.gamma"]
        model = transformers.Dinov2Model(cfg).eval()
        missing, unexpected = model.load_state_dict(hf, strict=False)
        assert not unexpected and all("position_ids" in m for m in missing), (missing, unexpected)
        run_timed(f"transformers {transformers.__version__}", images, res, batch, out,
                  lambda xb: model(pixel_values=xb).last_hidden_state[:, 1:])
    elif cmd == "storage":
        import glob
        import pyarrow as pa
        import pyarrow.parquet as pq
        f16_dir, int8_dir, name = sys.argv[2:5]

        def column_bytes(d, cols):
            total, images = 0, 0
            for f in sorted(glob.glob(f"{d}/shard-*.parquet")):
                md = pq.ParquetFile(f).metadata
                for rg in range(md.num_row_groups):
                    g = md.row_group(rg)
                    for c in range(g.num_columns):
                        col = g.column(c)
                        if col.path_in_schema.split(".")[0] in cols:
                            total += col.total_compressed_size
                images += len(set(pq.read_table(f, columns=["key"]).column("key").to_pylist()))
            return total / images

        t16 = pa.concat_tables([pq.read_table(f, columns=[name]) for f in sorted(glob.glob(f"{f16_dir}/shard-*.parquet"))])
        t8 = pa.concat_tables([pq.read_table(f, columns=[name, name + "_scale"]) for f in sorted(glob.glob(f"{int8_dir}/shard-*.parquet"))])
        x16 = np.stack([np.asarray(v, dtype=np.float32) for v in t16.column(name).to_pylist()])
        q = np.stack([np.asarray(v, dtype=np.float32) for v in t8.column(name).to_pylist()])
        sc = np.stack([np.asarray(v, dtype=np.float32) for v in t8.column(name + "_scale").to_pylist()])
        tokens = sc.shape[1]
        x16 = x16.reshape(len(x16), tokens, -1)
        x8 = q.reshape(len(q), tokens, -1) * sc[:, :, None]
        cos = (x16 * x8).sum(-1) / (np.linalg.norm(x16, axis=-1) * np.linalg.norm(x8, axis=-1))
        print(json.dumps(dict(teacher=name, f16_bytes_per_image=column_bytes(f16_dir, {name}),
                              int8_bytes_per_image=column_bytes(int8_dir, {name, name + "_scale"}),
                              cosine_mean=float(cos.mean()), cosine_min=float(cos.min()),
                              one_minus_cos_mean=float(1 - cos.mean()))))
    elif cmd == "compare":
        ours = safetensors.torch.load_file(sys.argv[2])["features"]
        ref = safetensors.torch.load_file(sys.argv[3])["features"]
        print(json.dumps(dict(rel_err=float((ours - ref).abs().max() / ref.abs().max()),
                              shape=list(ref.shape))))


if __name__ == "__main__":
    main()
