"""``rtstyle sheet PHOTO``: one photo in every installed style, on one labelled contact sheet.

The photo is resized to ``cell`` pixels wide (aspect kept) and stylised once per style; the tiles
(the original first) are laid out ``columns`` to a row with the style's name under each.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from rtstyle.errors import RtstyleError, progress, say
from rtstyle.imageio import image_output, read_image, read_stdin_image, write_image, write_stdout_png
from rtstyle.models import list_models, open_model, resolve

LABEL_HEIGHT = 28
GAP = 4


def fit(rgb: np.ndarray, cell: int) -> np.ndarray:
    """Resize so the shorter side is ``cell`` and both sides are multiples of 4 (the style nets' stride)."""
    h, w = rgb.shape[:2]
    s = cell / min(h, w)
    size = (max(cell, round(w * s / 4) * 4), max(cell, round(h * s / 4) * 4))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)


def crop(rgb: np.ndarray, cell: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    y, x = (h - cell) // 2, (w - cell) // 2
    return rgb[y:y + cell, x:x + cell]


def label(text: str, width: int) -> np.ndarray:
    """A white strip ``width`` pixels wide with ``text`` centred in black."""
    strip = np.full((LABEL_HEIGHT, width, 3), 255, np.uint8)
    scale = 0.55
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.putText(strip, text, (max(0, (width - tw) // 2), (LABEL_HEIGHT + th) // 2), cv2.FONT_HERSHEY_SIMPLEX,
                scale, (0, 0, 0), 1, cv2.LINE_AA)
    return strip


def layout(tiles: list[np.ndarray], names: list[str], columns: int) -> np.ndarray:
    """Equal-sized tiles with a label under each, ``columns`` to a row, GAP pixels of white between.

    >>> layout([np.zeros((8, 10, 3), np.uint8)] * 3, ["a", "b", "c"], 2).shape
    (76, 24, 3)
    """
    h, w = tiles[0].shape[:2]
    cells = [np.concatenate([t, label(n, w)], 0) for t, n in zip(tiles, names)]
    cells += [np.full_like(cells[0], 255)] * (-len(cells) % columns)
    rows = []
    for i in range(0, len(cells), columns):
        row = cells[i:i + columns]
        gap = np.full((row[0].shape[0], GAP, 3), 255, np.uint8)
        rows.append(np.concatenate([c for cell in row for c in (cell, gap)][:-1], 1))
    gap = np.full((GAP, rows[0].shape[1], 3), 255, np.uint8)
    return np.concatenate([r for row in rows for r in (row, gap)][:-1], 0)


def render(photo: np.ndarray, styles: list[str], cell: int = 320, columns: int = 4, backend: str = "torch",
           device: str | None = None) -> np.ndarray:
    """The contact sheet of ``photo`` (HxWx3 uint8 RGB) in each of ``styles`` (names or model files)."""
    from rtstyle.frames import Options, process

    h, w = photo.shape[:2]
    small = cv2.resize(photo, (cell, max(8, round(h * cell / w))), interpolation=cv2.INTER_AREA if w > cell
                       else cv2.INTER_CUBIC)
    tiles, names = [small], ["original"]
    for style in progress(styles, unit="style", desc="sheet"):
        model = open_model(style, "style", backend, device)
        tiles.append(process(model, small, Options()))
        names.append(model.name)
    return layout(tiles, names, columns)


def sheet_command(photo: str, output: str | None = None, styles: list[str] | None = None, cell: int = 320,
                  columns: int = 4, backend: str = "torch", device: str | None = None,
                  overwrite: bool = False) -> Path | None:
    """``rtstyle sheet``: checks first (the photo, the styles, the output), then renders and writes.
    ``-`` is standard input (the photo) or output (a PNG; then None is returned)."""
    if cell < 32:
        raise RtstyleError(f"--cell must be at least 32, not {cell}")
    if columns < 1:
        raise RtstyleError(f"--columns must be at least 1, not {columns}")
    names = styles or [name for name, _, _ in list_models("style")]
    if not names:
        raise RtstyleError("no style models installed")
    for name in names:
        resolve(name, "style")
    dest = image_output(photo, output, lambda p: p.with_name(f"{p.stem}.sheet.png"), overwrite)
    image = render(read_stdin_image() if photo == "-" else read_image(photo), names, cell, columns, backend, device)
    if dest is None:
        write_stdout_png(image)
        return None
    write_image(dest, image, overwrite)
    say(f"wrote {dest} ({image.shape[1]}x{image.shape[0]}: {len(names)} styles)")
    return dest

