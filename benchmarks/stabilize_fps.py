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
from rtstyle.stabilize import Flow, Stabilizer, _gray, trust, warp_tensor
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
    """Median milliseconds per frame of each stabiliser step on the clip's frames at ``side``."""
    with av.open(str(clip)) as c:
        frames = [f.to_ndarray(format="rgb24") for _, f in zip(range(n), c.decode(c.streams.video[0]))]
    xs = [torch.nn.functional.interpolate(upload(f[None], torch.device("cpu")), scale_factor=side / max(f.shape[:2]),
                                          mode="area") if side < max(f.shape[:2]) else upload(f[None], torch.device("cpu"))
          for f in frames]
    flow, t = Flow(), {"gray": [], "flow x2": [], "trust": [], "warp+blend": []}
    prev = None
    for x in xs:
        t0 = time.perf_counter(); g = _gray(x, 320); t1 = time.perf_counter()
        if prev is not None:
            b, f = flow(g, prev), flow(prev, g); t2 = time.perf_counter()
            w = trust(g, prev, b, f); t3 = time.perf_counter()
            torch.lerp(x, warp_tensor(x, b, x.shape[-2:]), 0.8 * torch.from_numpy(w)[None, None]
                       if w.shape == tuple(x.shape[-2:]) else 0.8); t4 = time.perf_counter()
            for k, v in zip(t, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                t[k].append(v * 1000)
        prev = g
    return {k: round(float(np.median(v)), 2) for k, v in t.items()} | {"size": f"{xs[0].shape[-1]}x{xs[0].shape[-2]}"}


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
