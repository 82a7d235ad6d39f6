"""Pipeline efficiency: end-to-end fps of `rtstyle video` vs the net's own fps, on one clip.

    nice -n 5 .venv/bin/python benchmarks/pipeline_fps.py            # CPU: chaplin.mp4 (640x360), width 0.5
    .venv/bin/python benchmarks/pipeline_fps.py --size 1920x1080     # GPU: a synthetic 1080p clip

The net is a width-reduced style net with random weights (speed does not depend on the weights).
Net-only fps is the backend alone on a frame already on the device, measured before and after the
end-to-end run (the machine may be shared: the ratio is taken within one run). Raw results go to
benchmarks/results/pipeline_fps-<device>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from rtstyle.backends import load_backend
from rtstyle.frames import Options
from rtstyle.models import Model
from rtstyle.nets import build_net
from rtstyle.stream import run_video
from rtstyle.synth import make_clip


def net_fps(backend, height: int, width: int, batch: int, seconds: float) -> float:
    """Frames per second of the backend alone (input already on the device, output left there)."""
    x = torch.rand(batch, 3, height, width, device=backend.device)
    sync = torch.cuda.synchronize if backend.device.type == "cuda" else (lambda: None)
    for _ in range(3):
        backend(x)
    sync()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        backend(x)
        n += batch
    sync()
    return n / (time.perf_counter() - t0)


def cpu_name() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "cpu"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clip", help="Video to process [default: $RTSTYLE_SHARED/data/video/chaplin.mp4, "
                                  "or a synthetic clip when --size is given]")
    p.add_argument("--size", help="WIDTHxHEIGHT of a synthetic clip to make instead (e.g. 1920x1080)")
    p.add_argument("--frames", type=int, default=240, help="Frames of the synthetic clip")
    p.add_argument("--width", type=float, default=0.5, help="Net channel width multiplier")
    p.add_argument("--backend", default="auto")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--device", default=None)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads [default: torch's]")
    p.add_argument("--seconds", type=float, default=10.0, help="Duration of each net-only measurement")
    p.add_argument("--out", default=None, help="JSON file [default: benchmarks/results/pipeline_fps-<device>.json]")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    arch = {"kind": "style", "norm": "instance", "upsample": "resize", "width": args.width}
    torch.manual_seed(0)
    meta = {"name": "bench", "arch": arch}
    backend = load_backend(build_net(arch), meta, backend=args.backend, device=args.device, precision=args.precision)
    with tempfile.TemporaryDirectory() as tmp:
        if args.size:
            w, h = (int(v) for v in args.size.split("x"))
            clip = make_clip(Path(tmp) / "clip.mp4", frames=args.frames, size=(w, h), fps=25)
        else:
            clip = Path(args.clip or Path(os.environ.get("RTSTYLE_SHARED", "../shared")) / "data/video/chaplin.mp4")
        import av
        with av.open(str(clip)) as c:
            h, w = c.streams.video[0].codec_context.height, c.streams.video[0].codec_context.width
        load0 = os.getloadavg()
        before = net_fps(backend, h, w, args.batch, args.seconds)
        report = run_video(clip, Path(tmp) / "out.mp4", Model.wrap(backend, meta), Options(), batch=args.batch, progress=False)
        after = net_fps(backend, h, w, args.batch, args.seconds)
        load1 = os.getloadavg()

    net = (before + after) / 2
    device = backend.device.type
    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "device": torch.cuda.get_device_name(backend.device) if device == "cuda" else cpu_name(),
        "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
        "backend": backend.name, "precision": args.precision, "net_width": args.width, "batch": args.batch,
        "clip": str(clip.name), "resolution": f"{w}x{h}", "frames": report.frames,
        "net_only_fps": round(net, 2), "net_only_fps_before_after": [round(before, 2), round(after, 2)],
        "end_to_end_fps": round(report.fps, 2), "end_to_end_seconds": round(report.seconds, 2),
        "in_pipeline_net_fps": round(report.net_fps, 2), "ratio": round(report.fps / net, 3),
        "load_average_before_after": [round(load0[0], 2), round(load1[0], 2)],
    }
    out = Path(args.out or Path(__file__).parent / "results" / f"pipeline_fps-{device}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['device']} ({backend.name}, {torch.get_num_threads()} threads), {w}x{h}, width {args.width}: "
          f"net {net:.2f} fps (before {before:.2f}, after {after:.2f}), end to end {report.fps:.2f} fps, "
          f"ratio {report.fps / net:.2f} -> {out}")


if __name__ == "__main__":
    main()
