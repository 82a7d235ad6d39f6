"""How the style weight and its normalisation balance two contrasting paintings (issue 16).

    python benchmarks/style_balance.py [--styles candy,the_scream] [--iterations 60] [--size 128]

What each objective asks for, measured where it is cheapest to measure on a shared 2-core CPU: for
each style and setting (the paper's plain Gram sum at weight 1, as the old shipped models were
trained, and the balanced per-layer loss at a few weights) the photo itself is optimised with
L-BFGS (``rtstyle.gatys``, starting from the photo) for ``--iterations`` steps under that objective,
on held-out BSD100 photos at ``--size`` px (the painting at twice that, as in training; the balanced
normalisers measured at that size on training photos). A feed-forward net trained on an objective
converges towards such images, so the table shows which settings keep the scene and which reach
the painting. Reported per setting: content loss (relu3_3) and the style-loss ratio to the
unchanged photo (plain Gram sum of the result / of the photo; < 1 = closer to the painting).
Results: benchmarks/results/style_balance.json and .png (rows: styles; columns: photo, settings).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from rtstyle import gatys, losses, train
from rtstyle.imageio import list_images, read_image, resize_longer, to_image, to_tensor, write_image
from rtstyle.vgg import load_vgg16

SETTINGS = (("plain", 1.0), ("balanced", 20.0), ("balanced", 80.0), ("balanced", 300.0))


def plain_ratio(vgg, grams_s, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(content loss of ``y`` against photo ``x``, plain style loss of ``y`` / of ``x``)."""
    with torch.no_grad():
        fx, fy = vgg(x), vgg(y)
        content = losses.feature_loss(fy["relu3_3"], fx["relu3_3"]).item()
        sy = losses.style_loss([losses.gram(f) for f in fy.values()], grams_s).item()
        sx = losses.style_loss([losses.gram(f) for f in fx.values()], grams_s).item()
    return content, sy / sx


def main(argv: list[str] | None = None) -> int:
    shared = Path(os.environ.get("RTSTYLE_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--styles", default="candy,the_scream")
    p.add_argument("--iterations", type=int, default=60)
    p.add_argument("--size", type=int, default=128, help="photo size (longer side), px")
    p.add_argument("--photos", type=int, default=2, help="held-out BSD100 photos (the first is shown)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "style_balance.json")
    args = p.parse_args(argv)
    vgg = load_vgg16(os.environ.get("RTSTYLE_VGG16"))
    paths = list_images(shared / "data" / "sr" / "BSD100")[: args.photos]
    photos = []
    for path in paths:
        rgb = resize_longer(read_image(path), args.size)
        photos.append(to_tensor(rgb[: rgb.shape[0] // 4 * 4, : rgb.shape[1] // 4 * 4]))
    rows, tiles, started = [], [], time.time()
    for style in args.styles.split(","):
        style_t = losses.load_style_target(str(shared / "data" / "styles" / f"{style}.jpg"), 2 * args.size)
        with torch.no_grad():
            grams_s = [losses.gram(f) for f in vgg(style_t).values()]
        norms = train.photo_norms(vgg, grams_s, str(shared / "data" / "train"), args.size)[0]
        line = [to_image(photos[0])]
        for kind, weight in SETTINGS:
            w = {**gatys.default_weights(), "style": weight}
            if kind == "balanced":
                w["style_norms"] = norms.tolist()
            measured = []
            for i, x in enumerate(photos):
                y = gatys.optimise(x, style_t, args.iterations, vgg=vgg, weights=w, init="content", progress=False)
                measured.append(plain_ratio(vgg, grams_s, x, y))
                if i == 0:
                    line.append(to_image(y))
            content, ratio = np.mean(measured, axis=0)
            row = {"style": style, "loss": kind, "style_weight": weight, "content": round(float(content), 3),
                   "style_ratio_to_photo": round(float(ratio), 3)}
            rows.append(row)
            print(json.dumps(row), flush=True)
        tiles.append(np.concatenate(line, 1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "command": "python benchmarks/style_balance.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "method": f"L-BFGS from the photo, {args.iterations} iterations, {args.size} px, painting at {2 * args.size} px",
        "columns": ["photo"] + [f"{k} {w:g}" for k, w in SETTINGS], "held_out": [q.name for q in paths],
        "seconds": round(time.time() - started, 1), "load_average": open("/proc/loadavg").read().split()[:3],
        "rows": rows}, indent=1) + "\n")
    write_image(args.out.with_suffix(".png"), np.concatenate(tiles, 0), overwrite=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
