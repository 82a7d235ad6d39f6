"""Render content photos x style models into one PNG grid (the README's gallery).

    python benchmarks/gallery.py                      # every shipped style, $RTSTYLE_SHARED/data/content/*
    python benchmarks/gallery.py --styles muse,wave --content a.jpg b.jpg --cell 320 --out docs/gallery.png

The top row shows each model's style image (from $RTSTYLE_SHARED/data/styles/, named in its model
card), the left column the photos. Each photo is stylised with its shorter side at ``--cell`` pixels,
then centre-cropped to a ``cell`` x ``cell`` tile.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from rtstyle import models
from rtstyle.errors import RtstyleError
from rtstyle.imageio import IMAGE_EXTS, read_image, to_image, to_tensor, write_image
from rtstyle.sheet import GAP, LABEL_HEIGHT, crop, fit, label


def style_thumbnail(meta: dict, cell: int, styles_dir: Path | None) -> np.ndarray:
    name = meta.get("style_image")
    path = styles_dir / name if styles_dir and name else None
    if path is None or not path.is_file():
        return np.full((cell, cell, 3), 240, np.uint8)
    return crop(fit(read_image(path), cell), cell)


def grid(rows: list[list[np.ndarray]], labels: list[str], cell: int) -> np.ndarray:
    """Tiles (all cell x cell) in rows, a GAP of white between them, a label strip under the top row."""
    cols = len(rows[0])
    width = cols * cell + (cols - 1) * GAP
    header = np.concatenate([rows[0][0]] + [np.concatenate([np.full((cell, GAP, 3), 255, np.uint8), t], 1)
                                            for t in rows[0][1:]], 1)
    strips = np.concatenate([label(labels[0], cell)] + [np.concatenate(
        [np.full((LABEL_HEIGHT, GAP, 3), 255, np.uint8), label(t, cell)], 1) for t in labels[1:]], 1)
    out = [header, strips]
    for row in rows[1:]:
        line = [row[0]] + [np.concatenate([np.full((cell, GAP, 3), 255, np.uint8), t], 1) for t in row[1:]]
        out += [np.full((GAP, width, 3), 255, np.uint8), np.concatenate(line, 1)]
    return np.concatenate(out, 0)


def render(style_names: list[str], content: list[Path], cell: int, device: str | None,
           styles_dir: Path | None) -> np.ndarray:
    dev = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    opened = [models.open_model(name, "style", backend="torch", device=dev) for name in style_names]
    rows = [[np.full((cell, cell, 3), 255, np.uint8)] + [style_thumbnail(m.meta, cell, styles_dir) for m in opened]]
    labels = [""] + [m.name for m in opened]
    with tqdm(total=len(content) * len(opened), unit="tile", desc="gallery", dynamic_ncols=True) as bar:
        for path in content:
            photo = fit(read_image(path), cell)
            x = to_tensor(photo).to(dev)
            row = [crop(photo, cell)]
            for m in opened:
                row.append(crop(to_image(m.backend(x)), cell))
                bar.update()
            rows.append(row)
    return grid(rows, labels, cell)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--styles", help="Comma-separated model names or files [default: every shipped style].")
    parser.add_argument("--content", nargs="+", type=Path, help="Photos [default: $RTSTYLE_SHARED/data/content/*].")
    parser.add_argument("--cell", type=int, default=256, help="Tile size in pixels (a multiple of 4).")
    parser.add_argument("--out", type=Path, default=Path("docs/gallery.png"), help="Output PNG (replaced atomically).")
    parser.add_argument("--device", help="cpu, cuda ... [default: CUDA if present].")
    args = parser.parse_args(argv)
    try:
        if args.cell < 32 or args.cell % 4:
            raise RtstyleError(f"--cell must be a multiple of 4 and at least 32, not {args.cell}")
        shared = Path(os.environ["RTSTYLE_SHARED"]) if os.environ.get("RTSTYLE_SHARED") else None
        if args.styles:
            names = [s for s in args.styles.split(",") if s]
        else:
            names = [name for name, path, _ in models.list_models("style") if path.parent == models.SHIPPED_DIR]
        if not names:
            raise RtstyleError("no style models: ship some in rtstyle/weights/ or pass --styles")
        content = args.content or (sorted(p for p in (shared / "data" / "content").iterdir()
                                          if p.suffix.lower() in IMAGE_EXTS) if shared else [])
        if not content:
            raise RtstyleError("no content photos: pass --content or set RTSTYLE_SHARED")
        image = render(names, content, args.cell, args.device, shared / "data" / "styles" if shared else None)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_image(args.out, image, overwrite=True)
    except RtstyleError as e:
        print(f"gallery: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({image.shape[1]}x{image.shape[0]}: {len(content)} photos x {len(names)} styles)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
