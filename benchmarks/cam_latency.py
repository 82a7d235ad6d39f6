"""Latency of `rtstyle cam` on a live stream, against the naive loop that stylizes every frame.

A child process serves a synthetic clip as H.264 MPEG-TS over UDP on 127.0.0.1 at real-time pace,
each frame carrying its index as a bar code. The age of a frame when it is shown is then
``time shown - time the server sent it`` (one CLOCK_MONOTONIC for both processes, Linux), for:

- ``cam``: ``rtstyle.camera.run`` (grabber thread keeps the newest frame, stale ones dropped);
- ``naive``: decode, stylize, repeat: every frame, in order, as a file pipeline would.

It also measures the net alone on the same frame size in the same run, so ``cam fps / net fps`` is
the plumbing's efficiency. Writes benchmarks/results/cam_latency.json.

    nice -n 5 .venv/bin/python benchmarks/cam_latency.py --size 640x360 --frames 60
"""
from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BITS, BLOCK = 16, 16  # the frame index as 16 black/white 16x16 blocks along the top-left edge
SERVE_SECONDS = 300   # longer than any run; the server is killed when a strategy is done


def mark(rgb: np.ndarray, index: int) -> np.ndarray:
    for b in range(BITS):
        rgb[:BLOCK, b * BLOCK:(b + 1) * BLOCK] = 255 if index >> b & 1 else 0
    return rgb


def read_mark(rgb: np.ndarray) -> int:
    centres = rgb[BLOCK // 2, BLOCK // 2::BLOCK][:BITS].mean(axis=-1)
    return sum(1 << b for b, v in enumerate(centres) if v > 127)


def serve(port: int, width: int, height: int, fps: int, start: float, seconds: float) -> None:
    """Stream frame i at monotonic time ``start + i / fps``."""
    import av

    from rtstyle.synth import pattern

    out = av.open(f"udp://127.0.0.1:{port}?pkt_size=1316", "w", format="mpegts")
    video = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "tune": "zerolatency", "g": str(fps)})
    video.width, video.height, video.pix_fmt = width, height, "yuv420p"
    frames = [pattern(i, width, height) for i in range(fps)]  # one second of pattern, looped: cheap to serve
    time.sleep(max(0.0, start - time.monotonic()))
    for i in range(int(seconds * fps)):
        frame = av.VideoFrame.from_ndarray(mark(frames[i % fps].copy(), i), format="rgb24")
        frame.pts = i
        time.sleep(max(0.0, start + i / fps - time.monotonic()))
        out.mux(video.encode(frame))
    out.close()


def start_server(args, seconds: float) -> tuple[subprocess.Popen, str, float]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic() + 1.0
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port), "--size", args.size, "--fps", str(args.fps),
                             "--start", repr(start), "--seconds", str(seconds)])
    return proc, f"udp://127.0.0.1:{port}", start


def ages(shown: list[tuple[int, float]], start: float, fps: int) -> dict:
    """How old each frame was when shown, in ms: median, 95th percentile, and the last frame's."""
    a = [(t - (start + i / fps)) * 1000 for i, t in shown]
    s = sorted(a)
    return {"frames": len(shown), "age_median_ms": round(statistics.median(s)),
            "age_p95_ms": round(s[min(len(s) - 1, int(0.95 * len(s)))]), "age_last_ms": round(a[-1])}


def main(args) -> dict:
    import torch

    import rtstyle.frames
    from rtstyle import camera
    from rtstyle.backends import load_backend
    from rtstyle.checkpoint import save_model
    from rtstyle.nets import build_net

    torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.split("x"))
    arch = {"kind": "style", "norm": "instance", "upsample": "resize", "width": args.width}
    model = save_model(build_net(arch), Path(tempfile.mkdtemp()) / "bench.safetensors", {"name": "bench", "arch": arch})
    options = rtstyle.frames.Options(max_side=args.max_side)
    process = rtstyle.frames.process

    # the net alone, same size, same backend
    opened = camera.Styles(str(model), args.backend, "fp32", "cpu").get()
    frame = np.zeros((height, width, 3), np.uint8)
    for _ in range(2):
        process(opened, frame, options)
    t = time.perf_counter()
    for _ in range(args.net_frames):
        process(opened, frame, options)
    net_fps = args.net_frames / (time.perf_counter() - t)

    # rtstyle cam, with each shown frame's index read back from the original
    shown: list[tuple[int, float]] = []

    def timed(m, rgb, options=None):
        out = process(m, rgb, options)
        shown.append((read_mark(rgb), time.monotonic()))
        return out

    proc, url, start = start_server(args, SERVE_SECONDS)
    camera.process = timed
    try:
        stats = camera.run(url, str(model), backend=args.backend, device="cpu", window=False,
                           frames=args.frames, max_side=args.max_side, timeout=10)
    finally:
        camera.process = process
        proc.kill()
    cam = {**ages(shown, start, args.fps), "fps": round(stats.frames / stats.seconds, 2), "stale_dropped": stats.dropped}

    # the naive loop: every frame, in order
    import av

    proc, url, start = start_server(args, SERVE_SECONDS)
    naive_shown = []
    try:
        with av.open(url, timeout=10) as c:
            for f in c.decode(video=0):
                rgb = f.to_ndarray(format="rgb24")
                process(opened, rgb, options)
                naive_shown.append((read_mark(rgb), time.monotonic()))
                if len(naive_shown) == args.frames:
                    break
    finally:
        proc.kill()
    naive = {**ages(naive_shown, start, args.fps),
             "fps": round((len(naive_shown) - 1) / (naive_shown[-1][1] - naive_shown[0][1]), 2)}
    return {"command": " ".join(sys.argv), "size": args.size, "source_fps": args.fps, "net_width": args.width,
            "max_side": args.max_side, "backend": args.backend, "torch_threads": args.threads,
            "net_only_fps": round(net_fps, 2), "cam": cam, "naive": naive,
            "cam_efficiency": round(cam["fps"] / min(net_fps, args.fps), 2)}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="640x360")
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--seconds", type=float, default=SERVE_SECONDS, help=argparse.SUPPRESS)
    p.add_argument("--frames", type=int, default=60, help="frames shown per strategy")
    p.add_argument("--width", type=float, default=0.25, help="net channel width (random weights: speed only)")
    p.add_argument("--max-side", type=int, default=None)
    p.add_argument("--backend", default="torch")
    p.add_argument("--threads", type=int, default=1, help="torch threads (2 shared cores here: 1 contends least)")
    p.add_argument("--net-frames", type=int, default=20)
    p.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    p.add_argument("--start", type=float, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        w, h = (int(v) for v in args.size.split("x"))
        serve(args.serve, w, h, args.fps, args.start, args.seconds)
        sys.exit(0)
    result = main(args)
    print(json.dumps(result, indent=1))
    out = Path(__file__).parent / "results" / "cam_latency.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
