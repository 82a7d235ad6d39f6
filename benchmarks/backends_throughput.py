"""Frames per second of each inference backend, at square sizes and video frame sizes.

    nice -n 5 .venv/bin/python benchmarks/backends_throughput.py [--widths 1.0,0.5] [--rounds 3] [--device cuda]

Runs every backend that can run on the device: on a CPU eager PyTorch and ONNX Runtime (fp32); on
CUDA eager fp32, eager fp16, torch.compile fp16 with CUDA graphs, and TensorRT fp16 when a TensorRT
module is installed. Nets are randomly initialised (speed does not depend on the weights). Within
each size the backends run round-robin, so load from other processes hits all of them alike; the
raw per-frame times go to benchmarks/results/backends-<device>.json (rewritten after every size).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import torch

from rtstyle.backends import load_backend
from rtstyle.nets import build_net

SIZES = [(256, 256), (512, 512), (1024, 1024), (720, 1280), (1080, 1920), (360, 640)]  # (height, width)
RESULTS = Path(__file__).parent / "results"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
        try:
            name = next(line.split(":", 1)[1] for line in open("/proc/cpuinfo") if line.startswith("model name"))
        except (OSError, StopIteration):
            pass
        name = f"cpu {name.replace('(R)', '')} {os.cpu_count()} cores"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def candidates(device: torch.device) -> list[tuple[str, str]]:
    """(backend, precision) pairs that can run on ``device``."""
    if device.type != "cuda":
        return [("torch", "fp32"), ("onnxruntime", "fp32")]
    from rtstyle.backends.tensorrt import import_tensorrt

    runs = [("torch", "fp32"), ("torch", "fp16"), ("compile", "fp16")]
    return runs + ([("tensorrt", "fp16")] if import_tensorrt() else [])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--widths", default="1.0,0.5", help="Net width multipliers, comma-separated.")
    p.add_argument("--rounds", type=int, default=3, help="Timed frames per backend and size (after one warm-up).")
    p.add_argument("--sizes", default=None, help="HxW,... [default: 256x256,512x512,1024x1024,720x1280,1080x1920,360x640].")
    p.add_argument("--device", default=None, help="cpu or cuda [default: cuda if present].")
    p.add_argument("--out", default=None, help="JSON file [default: benchmarks/results/backends-<device>.json].")
    args = p.parse_args()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")] if args.sizes else SIZES
    out = Path(args.out) if args.out else RESULTS / f"backends-{device_name(device)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    import onnxruntime

    report = {"device": device_name(device), "command": " ".join([Path(sys.executable).name, *sys.argv]),
              "torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "threads": torch.get_num_threads(),
              "cpu_count": os.cpu_count(), "load_average_start": os.getloadavg(), "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "batch": 1, "results": []}
    for width in (float(w) for w in args.widths.split(",")):
        torch.manual_seed(0)
        arch = {"kind": "style", "norm": "instance", "upsample": "resize", "width": width}
        net, meta = build_net(arch).eval(), {"name": f"bench-w{width}", "arch": arch}
        runs = {f"{b} {prec}": load_backend(copy.deepcopy(net), meta, b, device, prec) for b, prec in candidates(device)}
        for h, w in sizes:
            x = torch.rand(1, 3, h, w, device=device)
            times = {name: [] for name in runs}
            for name, fn in runs.items():  # warm-up: allocation, compilation, engine shape setup
                fn(x)
                sync()
            for _ in range(args.rounds):
                for name, fn in runs.items():
                    start = time.perf_counter()
                    fn(x)
                    sync()
                    times[name].append(time.perf_counter() - start)
            for name, ts in times.items():
                backend, precision = name.split()
                row = {"width": width, "backend": backend, "precision": precision, "height": h, "width_px": w,
                       "seconds": [round(t, 5) for t in ts], "fps_median": round(1 / statistics.median(ts), 3),
                       "fps_best": round(1 / min(ts), 3)}
                report["results"].append(row)
                print(f"width {width:<4} {h:>4}x{w:<5} {name:<18} {1000 * statistics.median(ts):9.1f} ms "
                      f"{row['fps_median']:8.2f} fps (best {row['fps_best']:.2f})", flush=True)
            report["load_average_end"] = os.getloadavg()
            out.write_text(json.dumps(report, indent=1))
    print(f"raw results: {out}")


if __name__ == "__main__":
    main()
