"""The official training step (commit f4d60a0) on the benchmark's tiny tokenizer, timed.

  python bench_step.py STEPS BATCH THREADS [single]

Builds `MaskAEModel` with the shape of benches/tokenizer/tiny.toml (64 px, width 128, 3 + 3
layers, 2 heads, 32 latent tokens × 16, one HOG decoder 32 wide / 1 layer / 2 heads) and runs
what train/train_tokenizer.py does per step without the discriminator and LPIPS: forward
(mask modeling, pixel decoder, HOG decoder and its target), `MSE + L_hog`, backward, global
grad clipping 1.0, AdamW (decay groups), EMA update. fp32 on the CPU with THREADS threads.
The model's frozen teacher (`repa_model`, built even when unused) is a tiny stand-in; the HOG
target is computed per step as in the reference. `single` removes the reference's
first, discarded encoder pass (spec §3) to time the same work as ours. Prints one JSON line.
"""

import copy
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "fixtures", "gen"))
import ref_stubs  # noqa: E402,F401
import gen_maetok as gm  # noqa: E402
import gen_mask_step as gs  # noqa: E402
import modelling.tokenizer as tok  # noqa: E402
from utils.ema import update_ema  # noqa: E402
from utils.optim import param_groups_weight_decay  # noqa: E402

steps, batch, threads = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
single = len(sys.argv) > 4 and sys.argv[4] == "single"
torch.set_num_threads(threads)
torch.manual_seed(0)

gs.rope_on_copies()
W = dict(embed_dim=128, depth=3, num_heads=2)
gm.register_tiny("vit_base_patch14_dinov2", W, movq=False)
gm.register_tiny("vit_base_patch14_dinov2_movqv2", W, movq=True)
gm.register_tiny("vit_tinytiny_patch14_dinov2_movq2", dict(embed_dim=32, depth=1, num_heads=2), movq=True)
tok.create_model = gs.tiny_teacher
cfg = dict(gm.BASE_CONFIG, codebook_embed_dim=16, num_latent_tokens=32, enc_drop_path_rate=0.0,
           dec_drop_path_rate=0.0, aux_dino_dec=False, aux_clip_dec=False)
model = tok.MaskAEModel(tok.ModelArgs(**cfg))


def reshape_per_patch(hog_feat):
    hog_feat = hog_feat.flatten(1, 2).permute(0, 2, 3, 1)
    return hog_feat.unfold(1, 2, 2).unfold(2, 2, 2).flatten(1, 2).flatten(2)


model.hog_generator._reshape = reshape_per_patch
if single:
    enc = model.encode

    def encode_once(x):
        h, mask = model.encoder(x, return_mask=True)
        quant = model.quant_conv(h)
        zero = torch.tensor(0.)
        return quant, (zero, zero, zero, zero), None, mask

    model.encode = encode_once
model.train()
ema = copy.deepcopy(model).eval()
for p in ema.parameters():
    p.requires_grad_(False)
opt = torch.optim.AdamW(param_groups_weight_decay(model, 1e-4), lr=1e-3, betas=(0.9, 0.95))
x = torch.rand(batch, 3, 64, 64) * 2 - 1
n_params = sum(p.numel() for n, p in model.named_parameters()
               if p.requires_grad and not n.startswith(("repa_model.", "projection.")))

times = []
for i in range(steps):
    t0 = time.perf_counter()
    dec, diff, _ = model(x)
    loss = F.mse_loss(x, dec) + diff[5]
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    update_ema(ema, model)
    times.append(time.perf_counter() - t0)
warm = times[min(5, len(times) - 1):]
print(json.dumps({"impl": "official" + ("-single-encode" if single else ""), "steps": len(warm),
                  "batch": batch, "threads": threads, "sec_per_step": sum(warm) / len(warm),
                  "it_per_sec": len(warm) / sum(warm), "params": n_params}))
