"""A frame strip of a moving object: input, per-frame output, `--stabilize` output, and where the
stabilised frame differs from the per-frame one (x4), every --step-th frame. Ghost trails would
show as copies of the object behind it in the third row and as bright trails in the fourth.

    RTSTYLE_SHARED=../shared .venv/bin/python benchmarks/flicker_strip.py --clip vtest.avi --style candy \
        --start 0 --frames 40 --step 8 --out benchmarks/results/flicker_strip.png
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import cv2
import numpy as np
import torch

from rtstyle import flicker as fl
from rtstyle.models import open_model
from rtstyle.stabilize import Settings


def label(img: np.ndarray, text: str) -> np.ndarray:
    img = img.copy()
    cv2.putText(img, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clip", default="vtest.avi")
    p.add_argument("--style", default="candy")
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--step", type=int, default=8)
    p.add_argument("--side", type=int, default=320)
    p.add_argument("--crop", default=None, help="x,y,w,h of the region to show (at --side)")
    p.add_argument("--out", default="benchmarks/results/flicker_strip.png")
    args = p.parse_args()
    clip = Path(args.clip)
    if not clip.is_file():
        clip = Path(os.environ.get("RTSTYLE_SHARED", "../shared")) / "data/video" / args.clip
    frames = fl.read_clip(clip, args.frames, args.side, skip=args.start)
    model = open_model(args.style, "style", backend="auto", device=torch.device("cpu"))
    xs, ys = fl.stylize(model, frames)
    per_frame, stab = fl.to_uint8(ys), fl.to_uint8(fl.stabilise(xs, ys, Settings()))
    x, y, w, h = (int(v) for v in args.crop.split(",")) if args.crop else (0, 0, frames[0].shape[1], frames[0].shape[0])
    picks = list(range(args.step, len(frames), args.step))
    rows = []
    for name, seq in (("input", frames), ("per-frame", per_frame), ("--stabilize", stab)):
        rows.append(np.concatenate([label(seq[i][y:y + h, x:x + w], f"{name} t={args.start + i}") for i in picks], 1))
    diff = [np.clip(np.abs(stab[i].astype(int) - per_frame[i]) * 4, 0, 255).astype(np.uint8)[y:y + h, x:x + w]
            for i in picks]
    rows.append(np.concatenate([label(d, "|stab - per-frame| x4") for d in diff], 1))
    strip = np.concatenate(rows, 0)
    cv2.imwrite(args.out, cv2.cvtColor(strip, cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out} ({strip.shape[1]}x{strip.shape[0]})")


if __name__ == "__main__":
    main()
