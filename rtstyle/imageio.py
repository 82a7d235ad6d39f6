"""Reading and writing still images, and converting them to and from tensors."""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import torch

from rtstyle.errors import RtstyleError
from rtstyle.outputs import atomic_output

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """File descriptor 2 muted: libjpeg and libpng print their own complaints about a damaged file
    there ("Corrupt JPEG data", "libpng error"), beside the one line rtstyle reports."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as an HxWx3 uint8 RGB array (gray is expanded, alpha dropped, 16-bit scaled,
    EXIF orientation applied)."""
    path = Path(path)
    if not path.is_file():
        raise RtstyleError(f"image not found: {path}")
    return decode_image(np.fromfile(path, dtype=np.uint8), str(path))


def decode_image(data: bytes | np.ndarray, name: str = "the image") -> np.ndarray:
    """Encoded image bytes (a file's content, standard input) as ``read_image`` returns them."""
    data = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else data
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # a damaged file is our one-line error, not its warnings
    # Always 3 channels (gray expanded, alpha dropped), turned by the EXIF orientation as viewers show it.
    with _quiet_stderr():
        img = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH) if data.size else None
    if img is None:
        raise RtstyleError(f"{name} is not a readable image")
    if img.dtype == np.uint16:
        img = (img / 257).round().astype(np.uint8)
    elif img.dtype != np.uint8:
        raise RtstyleError(f"{name} holds {img.dtype} pixels; save it with 8 or 16 bits per channel")
    return np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))


def write_image(path: str | os.PathLike, rgb: np.ndarray) -> Path:
    """Write an HxWx3 uint8 RGB array; the format follows the extension. Atomic: temp file, then
    rename (a full disk leaves no partial file and says so)."""
    path = Path(path)
    data = encode_image(rgb, path.suffix.lower() or ".png")
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
    return path


def encode_image(rgb: np.ndarray, ext: str = ".png") -> bytes:
    """An HxWx3 uint8 RGB array encoded in the format of extension ``ext`` (".png", ".jpg" ...)."""
    ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RtstyleError(f"cannot encode a {rgb.shape[1]}x{rgb.shape[0]} image as {ext}"
                           + (" (WebP holds at most 16383x16383)" if ext == ".webp" and max(rgb.shape[:2]) > 16383 else ""))
    return buf.tobytes()


def resize_longer(rgb: np.ndarray, size: int | None) -> np.ndarray:
    """Resize so the longer side is ``size`` pixels (aspect kept); ``None`` leaves the image as is."""
    if not size:
        return rgb
    h, w = rgb.shape[:2]
    s = size / max(h, w)
    return cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))),
                      interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)


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
