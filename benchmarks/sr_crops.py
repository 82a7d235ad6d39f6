"""Side-by-side crops of super-resolution: bicubic | each model | ground truth, one row per image.

    python benchmarks/sr_crops.py --models sr_x4_pixel,sr_x4_feat --out benchmarks/results/sr_x4_crops.png
    python benchmarks/sr_crops.py --scale 8 --models sr_x8_feat --images baby.png,zebra.png --crop 160

Each image is modcropped, downsampled with the benchmarks' MATLAB bicubic (``rtstyle eval sr``'s
input), upscaled by bicubic and by each model, and the same ``--crop`` square (centred, or at
``--at X,Y`` in the HR image) is cut from every result and shown ``--zoom`` times larger with
nearest-neighbour pixels, so that checkerboards and ringing stay visible. Each tile's label has its
PSNR on Y (the ``eval sr`` protocol) over the whole image.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from rtstyle.data import make_lr
from rtstyle.errors import RtstyleError
from rtstyle.imageio import read_image, to_image, to_tensor, write_image
from rtstyle.imresize import imresize
from rtstyle.metrics import modcrop, sr_scores
from rtstyle.models import open_model

sys.path.insert(0, str(Path(__file__).parent))
from gallery import GAP, label  # noqa: E402


def tiles_for(hr: np.ndarray, nets: dict, scale: int, size: int, at: tuple[int, int] | None, zoom: int) -> list:
    """(label, zoomed crop) for bicubic, every net and the ground truth of one HR image."""
    hr = modcrop(hr, scale)
    lr = make_lr(hr, scale)
    outputs = {"bicubic": imresize(lr, scale)}
    for name, net in nets.items():
        with torch.no_grad():
            outputs[name] = to_image(net(to_tensor(lr)))
    h, w = hr.shape[:2]
    x, y = at if at else ((w - size) // 2, (h - size) // 2)
    x, y = min(max(0, x), w - size), min(max(0, y), h - size)
    tiles = [(f"{name} {sr_scores(out, hr, scale)[0]:.2f} dB", out) for name, out in outputs.items()]
    tiles.append(("ground truth", hr))
    return [(text, cv2.resize(img[y:y + size, x:x + size], None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST))
            for text, img in tiles]


def grid(rows: list[list[tuple[str, np.ndarray]]]) -> np.ndarray:
    cell = rows[0][0][1].shape[0]
    out_rows = []
    for row in rows:
        cols = [np.vstack([label(text, cell), tile]) for text, tile in row]
        gap = np.full((cols[0].shape[0], GAP, 3), 255, np.uint8)
        out_rows.append(np.hstack([c for col in cols for c in (col, gap)][:-1]))
    gap = np.full((GAP, out_rows[0].shape[1], 3), 255, np.uint8)
    return np.vstack([r for row in out_rows for r in (row, gap)][:-1])


def main(argv: list[str] | None = None) -> int:
    shared = Path(os.environ.get("RTSTYLE_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", required=True, help="comma-separated SR model names or files, same scale")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--set", default=str(shared / "data/sr/Set14"), help="folder of HR images")
    p.add_argument("--images", default="baboon.png,comic.png,zebra.png", help="comma-separated file names in --set")
    p.add_argument("--crop", type=int, default=96, help="crop side in HR pixels")
    p.add_argument("--at", default=None, help="X,Y of the crop's top-left corner in the HR image (default: centre)")
    p.add_argument("--zoom", type=int, default=3)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    try:
        nets = {}
        for name in args.models.split(","):
            model = open_model(name, "sr", backend=None)
            if model.scale != args.scale:
                raise RtstyleError(f"model {model.name} upscales x{model.scale}, not x{args.scale}")
            nets[model.name if model.name not in nets else f"{model.name} #{len(nets) + 1}"] = model.net.eval()
        at = tuple(int(v) for v in args.at.split(",")) if args.at else None
        rows = [tiles_for(read_image(Path(args.set) / name), nets, args.scale, args.crop, at, args.zoom)
                for name in args.images.split(",")]
        write_image(args.out, grid(rows))
    except (RtstyleError, OSError, ValueError) as e:
        print(f"rtstyle: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
