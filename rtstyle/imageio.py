"""Reading and writing still images, and converting them to and from tensors."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch

from rtstyle.errors import RtstyleError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as an HxWx3 uint8 RGB array (gray is expanded, alpha dropped, 16-bit scaled)."""
    path = Path(path)
    if not path.is_file():
        raise RtstyleError(f"image not found: {path}")
    data = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise RtstyleError(f"{path} is not a readable image")
    if img.dtype == np.uint16:
        img = (img / 257).round().astype(np.uint8)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    else:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(img)


def write_image(path: str | os.PathLike, rgb: np.ndarray) -> Path:
    """Write an HxWx3 uint8 RGB array; the format follows the extension. Atomic: temp file, then rename."""
    from rtstyle.checkpoint import atomic_path

    path = Path(path)
    ext = path.suffix.lower() or ".png"
    ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RtstyleError(f"cannot encode an image as {ext}")
    tmp = atomic_path(path)
    try:
        tmp.write_bytes(buf.tobytes())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 -> 1x3xHxW float32 in [0, 1]."""
    return torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).float().div_(255)


def to_image(x: torch.Tensor) -> np.ndarray:
    """1x3xHxW (or 3xHxW) float in [0, 1] -> HxWx3 uint8, rounded."""
    x = x.detach().float().cpu()
    if x.dim() == 4:
        x = x[0]
    return x.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).contiguous().numpy()


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Every image file under ``folder``, recursively, sorted."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())
