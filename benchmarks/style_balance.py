"""How the style weight and its normalisation balance two contrasting paintings (issue 16), in tiny runs.

    python benchmarks/style_balance.py [--styles candy,the_scream] [--steps 40] [--size 128]

For each style and setting (the paper's plain Gram sum at weight 1, and the balanced per-layer loss at
a few weights) it trains a width-0.25 net (5x5 edge convs) for ``--steps`` Adam steps on ``--size``
crops, then scores it on held-out BSD100 photos at 256 px: the content loss (relu3_3) and the
style-loss ratio to the unchanged photo (plain Gram sum of the output / of the photo itself; < 1 means
closer to the painting than the photo is). Results: benchmarks/results/style_balance.json and a
picture, style_balance.png (rows: styles; columns: photo, then each setting).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rtstyle import losses, train
from rtstyle.data import ImageFolder
from rtstyle.imageio import list_images, read_image, resize_longer, to_image, to_tensor, write_image
from rtstyle.nets import build_net
from rtstyle.vgg import load_vgg16

SETTINGS = (("plain", 1.0), ("balanced", 20.0), ("balanced", 80.0), ("balanced", 300.0))


def score(net, vgg, grams_s, photos: list[torch.Tensor]) -> dict:
    """Mean content loss and style-loss ratio (output / unchanged photo) over held-out photos."""
    content, ratio = [], []
    with torch.no_grad():
        for x in photos:
            y = net(x) if net is not None else x
            fx, fy = vgg(x), vgg(y)
            content.append(losses.feature_loss(fy["relu3_3"], fx["relu3_3"]).item())
            style_y = losses.style_loss([losses.gram(f) for f in fy.values()], grams_s).item()
            style_x = losses.style_loss([losses.gram(f) for f in fx.values()], grams_s).item()
            ratio.append(style_y / style_x)
    return {"content": round(float(np.mean(content)), 3), "style_ratio": round(float(np.mean(ratio)), 3)}


def run(style: str, kind: str, weight: float, args, vgg, photos) -> tuple[dict, torch.nn.Module]:
    r = train.StyleRecipe(str(args.styles_dir / f"{style}.jpg"), str(args.data), style, image_size=args.size,
                          style_size=2 * args.size, width=0.25, edge_kernel=5, balanced=kind == "balanced",
                          style_weight=weight, lr=2e-3)
    with torch.no_grad():
        grams = [losses.gram(f) for f in vgg(losses.load_style_target(r.style_image, r.style_size)).values()]
    norms = train.photo_norms(vgg, grams, r.data, r.image_size) if r.balanced else None
    torch.manual_seed(0)
    net = build_net(r.arch())
    batches = train._batches(ImageFolder(r.data, r.image_size, "style"), 4, 0, 0)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        final = train.fit(net, train.multi_style_objective(vgg, grams, norms, r, multi=False), batches,
                          iterations=args.steps, lr=r.lr, state_path=Path(tmp) / "state.pt",
                          meta={"name": style, "arch": r.arch(), "recipe": {}}, resume=False, checkpoint_every=0,
                          device=torch.device("cpu"), rank=0, world=1)
    net.eval()
    # held-out scoring uses the painting at 2x the scoring size, as in training
    with torch.no_grad():
        grams_eval = [losses.gram(f) for f in vgg(losses.load_style_target(r.style_image, 512)).values()]
    row = {"style": style, "loss": kind, "style_weight": weight, "steps": args.steps, "size": args.size,
           "train_seconds": round(time.time() - t0, 1), "final_train_losses": {k: round(v, 3) for k, v in final.items()},
           **score(net, vgg, grams_eval, photos)}
    return row, net


def main(argv: list[str] | None = None) -> int:
    shared = Path(os.environ.get("RTSTYLE_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--styles", default="candy,the_scream")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--size", type=int, default=128, help="training crop size")
    p.add_argument("--photos", type=int, default=3, help="held-out BSD100 photos scored (and the first shown)")
    p.add_argument("--data", type=Path, default=shared / "data" / "train")
    p.add_argument("--styles-dir", type=Path, default=shared / "data" / "styles")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "style_balance.json")
    args = p.parse_args(argv)
    vgg = load_vgg16(os.environ.get("RTSTYLE_VGG16"))
    paths = list_images(shared / "data" / "sr" / "BSD100")[: args.photos]
    photos = []
    for path in paths:
        rgb = resize_longer(read_image(path), 256)
        photos.append(to_tensor(rgb[: rgb.shape[0] // 4 * 4, : rgb.shape[1] // 4 * 4]))
    rows, tiles = [], []
    for style in args.styles.split(","):
        with torch.no_grad():
            grams = [losses.gram(f) for f in vgg(losses.load_style_target(str(args.styles_dir / f"{style}.jpg"), 512)).values()]
        rows.append({"style": style, "loss": "unchanged photo", **score(None, vgg, grams, photos)})
        line = [to_image(photos[0])]
        for kind, weight in SETTINGS:
            row, net = run(style, kind, weight, args, vgg, photos)
            rows.append(row)
            print(json.dumps(row), flush=True)
            with torch.no_grad():
                line.append(to_image(net(photos[0])))
        tiles.append(np.concatenate(line, 1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": "python benchmarks/style_balance.py " + " ".join(argv or sys.argv[1:]),
                                    "columns": ["photo"] + [f"{k} {w:g}" for k, w in SETTINGS],
                                    "load_average": open("/proc/loadavg").read().split()[:3],
                                    "held_out": [q.name for q in paths], "rows": rows}, indent=1) + "\n")
    write_image(args.out.with_suffix(".png"), np.concatenate(tiles, 0), overwrite=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
