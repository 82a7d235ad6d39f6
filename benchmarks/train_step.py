"""Seconds per style-training step (paper setting: 256 px, batch 4), fp32 vs bf16 autocast, in one run.

    python benchmarks/train_step.py [--size 256] [--batch 4] [--width 1.0] [--steps 5]

Uses the real loss (VGG-16 relu1_2..relu4_3, Gram, TV) and Adam; random photos are as costly as
real ones. Results go to benchmarks/results/train_step-<device>.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from rtstyle import losses, train
from rtstyle.nets import build_net
from rtstyle.vgg import STYLE_LAYERS, VGG16Features


def step_times(device: torch.device, size: int, batch: int, width: float, steps: int, amp: torch.dtype | None) -> list[float]:
    torch.manual_seed(0)
    vgg = VGG16Features(STYLE_LAYERS).to(device).eval().requires_grad_(False)
    net = build_net({"kind": "style", "width": width}).to(device)
    with torch.no_grad():
        grams = [losses.gram(f) for f in vgg(torch.rand(1, 3, 512, 512, device=device)).values()]
    loss_fn = train.style_objective(vgg, grams, losses.CONTENT_WEIGHT, losses.STYLE_WEIGHT, losses.TV_WEIGHT)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    x = torch.rand(batch, 3, size, size, device=device)
    times = []
    for _ in range(steps + 1):  # the first step warms up
        t = time.perf_counter()
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            total = loss_fn(net, x)["total"]
        opt.zero_grad()
        total.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return times[1:]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--steps", type=int, default=5)
    args = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"{platform.processor() or platform.machine()} {torch.get_num_threads()} threads"
    amp = train.autocast_dtype(device)
    results = {"device": name, "torch": torch.__version__, "size": args.size, "batch": args.batch, "width": args.width,
               "date": time.strftime("%Y-%m-%d")}
    for label, dtype in [("fp32", None)] + ([(str(amp).replace("torch.", ""), amp)] if amp else []):
        t = step_times(device, args.size, args.batch, args.width, args.steps, dtype)
        results[label] = {"median_s": round(statistics.median(t), 3), "all_s": [round(v, 3) for v in t]}
        print(f"{label}: {statistics.median(t):.3f} s/step (median of {len(t)}) at {args.size} px, batch {args.batch}, width {args.width}")
    out = Path(__file__).parent / "results" / f"train_step-{device.type}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
