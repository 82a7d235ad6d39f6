"""End-to-end fps of `rtstyle video` with and without `--stabilize`, interleaved in one run, and
what the stabiliser itself costs per frame (flow, trust mask, warp and blend) at the net's resolution.

    nice -n 5 .venv/bin/python benchmarks/stabilize_fps.py --frames 60 --rounds 2

Clip: the first --frames frames of chaplin.mp4 (640x360), re-encoded losslessly to a temporary file;
shipped style (candy, width 0.5), backend auto. Raw results: benchmarks/results/stabilize_fps-cpu.json.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from rtstyle.frames import Options, upload
from rtstyle.models import open_model
from rtstyle.stabilize import Flow, Stabilizer, _gray
from rtstyle.stream import run_video


def cut(src: Path, dst: Path, frames: int) -> None:
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        s = out.add_stream("libx264", rate=25, options={"crf": "0", "preset": "ultrafast"})
        for i, f in enumerate(inp.decode(inp.streams.video[0])):
            if i == frames:
                break
            if i == 0:
                s.width, s.height, s.pix_fmt = f.width, f.height, "yuv420p"
            out.mux(s.encode(av.VideoFrame.from_ndarray(f.to_ndarray(format="rgb24"), format="rgb24")))
        out.mux(s.encode(None))


def parts(clip: Path, side: int, n: int = 30) -> dict:
    """Median milliseconds per frame at the net's resolution ``side``: the whole ``Stabilizer`` step
    and, inside it, the two flows (forward and backward, the stabiliser's method) on the host."""
    with av.open(str(clip)) as c:
        frames = [f.to_ndarray(format="rgb24") for _, f in zip(range(n), c.decode(c.streams.video[0]))]
    xs = []
    for f in frames:
        x = upload(f[None], torch.device("cpu"))
        xs.append(torch.nn.functional.interpolate(x, scale_factor=side / max(f.shape[:2]), mode="area")
                  if side < max(f.shape[:2]) else x)
    stab, flow = Stabilizer(), Flow()
    step, flows = [], []
    with torch.inference_mode():
        for i, x in enumerate(xs):
            y = x.flip(1)  # any output of the net's size will do for timing
            t0 = time.perf_counter()
            stab(x, y)
            step.append((time.perf_counter() - t0) * 1000)
            if i:
                a, b = _gray(xs[i - 1], 320), _gray(x, 320)
                t0 = time.perf_counter()
                flow(b, a), flow(a, b)
                flows.append((time.perf_counter() - t0) * 1000)
    return {"size": f"{xs[0].shape[-1]}x{xs[0].shape[-2]}", "stabilizer_step": round(float(np.median(step[1:])), 2),
            "of_which_flows": round(float(np.median(flows)), 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clip", default=str(Path(os.environ.get("RTSTYLE_SHARED", "../shared")) / "data/video/chaplin.mp4"))
    p.add_argument("--style", default="candy")
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--max-side", type=int, action="append", default=None, help="net sizes to run (repeatable) [640, 320]")
    p.add_argument("--out", default="benchmarks/results/stabilize_fps-cpu.json")
    args = p.parse_args()
    sides = args.max_side or [640, 320]
    model = open_model(args.style, "style", backend="auto")
    res = {"clip": Path(args.clip).name, "frames": args.frames, "style": args.style, "backend": model.backend.name,
           "torch_threads": torch.get_num_threads(), "loadavg_before": open("/proc/loadavg").read().split()[:3], "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        cut(Path(args.clip), clip, args.frames)
        res["stabilizer_ms"] = {str(s): parts(clip, s) for s in sides}
        for r in range(args.rounds):
            for side in sides:
                for stab in (False, True):
                    rep = run_video(clip, Path(tmp) / f"o{r}{side}{stab}.mp4", model,
                                    Options(max_side=side, stabilize=stab), progress=False)
                    res["runs"].append({"round": r, "max_side": side, "stabilize": stab, "fps": round(rep.fps, 3)})
                    print(res["runs"][-1], flush=True)
    res["loadavg_after"] = open("/proc/loadavg").read().split()[:3]
    for side in sides:
        fps = {s: np.mean([x["fps"] for x in res["runs"] if x["max_side"] == side and x["stabilize"] == s])
               for s in (False, True)}
        res[f"ratio_{side}"] = round(fps[True] / fps[False], 3)
    print(json.dumps({k: v for k, v in res.items() if k != "runs"}, indent=1))
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
