"""pytorch-fid 0.3.0's side of the Inception benchmark (`benches/eval/run.sh`).

  python bench_inception.py IMAGES BATCH SIDE THREADS FID_SAMPLES

`InceptionV3([3])` (`use_fid_inception`, random weights handed to its download: they time
as the real ones), eval mode, `torch.no_grad`, on a fixed batch of random uint8 images of
SIDE × SIDE converted as `fid_score.py` does (ToTensor: /255) and through the model's own
resize to 299 and 2x − 1; then `np.cov` of two random FID_SAMPLES × 2048 feature sets in
float64 and `calculate_frechet_distance` (scipy `sqrtm`). Prints one JSON line.
"""

import json
import sys
import time

import numpy as np
import torch

import pytorch_fid.inception as pfid
from pytorch_fid.fid_score import calculate_frechet_distance

images, batch, side, threads, fid_samples = map(int, sys.argv[1:6])
torch.set_num_threads(threads)


def fid_net_state():
    net = pfid._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    net.Mixed_5b = pfid.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = pfid.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = pfid.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = pfid.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = pfid.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = pfid.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = pfid.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = pfid.FIDInceptionE_1(1280)
    net.Mixed_7c = pfid.FIDInceptionE_2(2048)
    torch.manual_seed(0)
    return {k: (torch.randn_like(v) * 0.05 if v.is_floating_point() else v)
            for k, v in net.state_dict().items()}


state = fid_net_state()
pfid.load_state_dict_from_url = lambda *a, **k: state
model = pfid.InceptionV3([3]).eval()
x = torch.randint(0, 256, (batch, side, side, 3), dtype=torch.uint8)


def run():
    with torch.no_grad():
        model(x.permute(0, 3, 1, 2).float() / 255.0)[0]


run()
steps = max(1, -(-images // batch))
t = time.perf_counter()
for _ in range(steps):
    run()
out = {"side": "pytorch-fid", "what": "inception", "batch": batch, "input_side": side,
       "threads": threads, "images_per_s": steps * batch / (time.perf_counter() - t)}
if fid_samples > 0:
    rng = np.random.default_rng(0)
    f1 = rng.standard_normal((fid_samples, 2048), dtype=np.float32)
    f2 = rng.standard_normal((fid_samples, 2048), dtype=np.float32) * 1.1 + 0.05
    t = time.perf_counter()
    s = [(np.mean(f.astype(np.float64), axis=0), np.cov(f.astype(np.float64), rowvar=False)) for f in (f1, f2)]
    out["fid_statistics_s"] = time.perf_counter() - t
    t = time.perf_counter()
    out["fid"] = float(calculate_frechet_distance(*s[0], *s[1]))
    out["fid_distance_s"] = time.perf_counter() - t
    out["fid_samples"] = fid_samples
print(json.dumps(out))
