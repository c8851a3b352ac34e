"""The official SiT training step and sampler (commit f4d60a0) on the benchmark's tiny SiT.

  python bench_step.py step STEPS BATCH THREADS
  python bench_step.py sample SAMPLES SDE_STEPS THREADS

`step`: `SiT` (`modelling/sit.py`) with `configs/sit-tiny.toml`'s shape (SiT-T/1: width 128,
4 blocks, 4 heads) on 128 × 32 latents, 1000 classes; per step what `train/train_sit.py`
does: `SILoss` (linear path, lognormal t; label dropout inside the model), `loss.mean()`,
backward, grad clip 1.0, AdamW (lr 1e-4, betas 0.9/0.999, no decay), EMA update (0.9999). A
fixed random batch (no data loading). `sample`: `euler_maruyama_sampler` with CFG 1.9 on
[0, 0.75] over SAMPLES samples. fp32 on the CPU with THREADS threads. The model's weights are
drawn so its output is not zero (the official init zeroes adaLN and the final layer, which
a training step undoes anyway; a sampler run on a zero model would time a trivial network
no differently). Prints one JSON line.
"""

import copy
import json
import os
import sys
import time

import torch

REF = os.environ.get("MAETOK_REF_DIR", "/tmp/maetok-ref")
sys.path.insert(0, REF)
from losses.sit_loss import SILoss  # noqa: E402
from modelling.samplers import euler_maruyama_sampler  # noqa: E402
from modelling.sit import SiT  # noqa: E402

mode, n, m, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
torch.manual_seed(0)
model = SiT(path_type="linear", input_size=128, patch_size=1, in_channels=32, hidden_size=128,
            decoder_hidden_size=128, depth=4, num_heads=4, mlp_ratio=4.0, class_dropout_prob=0.1,
            num_classes=1000, use_cfg=True, vae_1d=True, qk_norm=False, fused_attn=True)
with torch.no_grad():
    for name, p in model.named_parameters():
        if "adaLN" in name or "final_layer" in name:
            p.normal_(0, 0.02)


def rate(fn, count, warm=3):
    for _ in range(warm):
        fn()
    t = time.perf_counter()
    for _ in range(count):
        fn()
    return count / (time.perf_counter() - t)


if mode == "step":
    steps, batch = n, m
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.999), weight_decay=0.0, eps=1e-8)
    loss_fn = SILoss(prediction="v", path_type="linear", weighting="lognormal")
    x = torch.randn(batch, 128, 32)
    y = torch.randint(0, 1000, (batch,))
    model.train()

    def step():
        loss, _ = loss_fn(model, x, dict(y=y), zs=[])
        loss = loss.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            for e, p in zip(ema.parameters(), model.parameters()):
                e.mul_(0.9999).add_(p.detach(), alpha=1 - 0.9999)

    print(json.dumps({"side": "official", "what": "step", "threads": threads, "batch": batch,
                      "it_per_sec": rate(step, steps)}))
else:
    samples, sde_steps = n, m
    model.eval()
    z = torch.randn(samples, 128, 32)
    y = torch.randint(0, 1000, (samples,))

    def run():
        euler_maruyama_sampler(model, z, y, num_steps=sde_steps, cfg_scale=1.9,
                               guidance_low=0.0, guidance_high=0.75)

    t = time.perf_counter()
    run()
    dt = time.perf_counter() - t
    print(json.dumps({"side": "official", "what": "sample", "threads": threads, "samples": samples,
                      "steps": sde_steps, "sampler_steps_per_sec": sde_steps / dt,
                      "samples_per_sec": samples / dt}))
