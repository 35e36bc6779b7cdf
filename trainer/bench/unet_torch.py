#!/usr/bin/python3
"""PyTorch reference for trainctl's UNet-S benchmark (DESIGN.md, "Reference model").

UNet-S: input 3x128x128, 3 classes; encoder stages 16, 32, 64, 128 channels, each
two conv3x3 (pad 1) + ReLU, skip, maxpool 2x2; bottleneck two conv3x3 to 256 at
8x8; decoder 128, 64, 32, 16: ConvTranspose 2x2 stride 2, concat skip, two
conv3x3 + ReLU; head conv1x1 to 3 logits; mean per-pixel softmax cross-entropy;
Adam lr 1e-3. 1,941,139 parameters.

Run with Debian's interpreter (python3-torch), threads pinned explicitly:

    /usr/bin/python3 trainer/bench/unet_torch.py --threads 2

Output is one machine-readable line per measurement, for example

    torch kind=train batch=8 threads=2 images_per_s=12.3 ms_per_step=650.1 steps=10
    torch kind=infer batch=1 threads=2 ms_per_batch=20.1 images_per_s=49.7 iters=20

plus a "torch params=..." line and "torch version=..." line. Inputs are random
(seeded); timings are wall-clock medians over the timed iterations after warm-up.
"""
import argparse
import os
import sys
import time


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--train-batches", default="8,32")
    p.add_argument("--infer-batches", default="1,8")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=8, help="timed training steps per batch size")
    p.add_argument("--iters", type=int, default=20, help="timed inference batches per batch size")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--only", choices=["", "train", "infer"], default="")
    p.add_argument("--params-only", action="store_true")
    return p.parse_args()


ARGS = parse()
# Thread counts must be fixed before torch starts its pools.
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(ARGS.threads)
torch.set_num_interop_threads(1)


def double_conv(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(inplace=True),
    )


class UNetS(nn.Module):
    def __init__(self, in_ch=3, classes=3, widths=(16, 32, 64, 128), bottleneck=256):
        super().__init__()
        self.enc = nn.ModuleList()
        c = in_ch
        for w in widths:
            self.enc.append(double_conv(c, w))
            c = w
        self.mid = double_conv(c, bottleneck)
        c = bottleneck
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for w in reversed(widths):
            self.up.append(nn.ConvTranspose2d(c, w, 2, stride=2))
            self.dec.append(double_conv(2 * w, w))
            c = w
        self.head = nn.Conv2d(c, classes, 1)

    def forward(self, x):
        skips = []
        for e in self.enc:
            x = e(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.mid(x)
        for up, dec, s in zip(self.up, self.dec, reversed(skips)):
            x = dec(torch.cat([s, up(x)], dim=1))
        return self.head(x)


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def bench_train(model, batch):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(batch)
    x = torch.rand(batch, 3, ARGS.size, ARGS.size, generator=g)
    y = torch.randint(0, 3, (batch, ARGS.size, ARGS.size), generator=g)
    model.train()
    times = []
    for i in range(ARGS.warmup + ARGS.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        dt = time.perf_counter() - t0
        if i >= ARGS.warmup:
            times.append(dt)
    m = median(times)
    print(f"torch kind=train batch={batch} threads={ARGS.threads} images_per_s={batch / m:.3f} "
          f"ms_per_step={m * 1e3:.2f} steps={len(times)} loss={loss.item():.4f}", flush=True)


@torch.no_grad()
def bench_infer(model, batch):
    g = torch.Generator().manual_seed(1000 + batch)
    x = torch.rand(batch, 3, ARGS.size, ARGS.size, generator=g)
    model.eval()
    times = []
    for i in range(ARGS.warmup + ARGS.iters):
        t0 = time.perf_counter()
        model(x).argmax(dim=1)
        dt = time.perf_counter() - t0
        if i >= ARGS.warmup:
            times.append(dt)
    m = median(times)
    print(f"torch kind=infer batch={batch} threads={ARGS.threads} ms_per_batch={m * 1e3:.2f} "
          f"images_per_s={batch / m:.3f} iters={len(times)}", flush=True)


def main():
    torch.manual_seed(1)
    model = UNetS()
    nparams = sum(p.numel() for p in model.parameters())
    print(f"torch version={torch.__version__} threads={torch.get_num_threads()} "
          f"python={sys.version.split()[0]}", flush=True)
    print(f"torch params={nparams}", flush=True)
    if nparams != 1941139:
        print(f"torch error: UNet-S has {nparams} parameters, DESIGN.md says 1941139", file=sys.stderr)
        sys.exit(1)
    if ARGS.params_only:
        return
    if ARGS.only in ("", "train"):
        for b in [int(s) for s in ARGS.train_batches.split(",") if s]:
            bench_train(model, b)
    if ARGS.only in ("", "infer"):
        for b in [int(s) for s in ARGS.infer_batches.split(",") if s]:
            bench_infer(model, b)


if __name__ == "__main__":
    main()
