"""Reading and writing still images, and converting them to and from tensors."""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np
import torch

from rtstyle.errors import RtstyleError, unreadable_input
from rtstyle.outputs import atomic_output, check_output

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MAX_PIXELS = 1 << 28  # 268 megapixels (16384x16384): 805 MB as RGB, before any net runs on it


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


def header_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) as an image file's header states it (PNG, JPEG, BMP, WebP, TIFF), read
    before any pixel is decoded; None if the header does not say.

    >>> header_size(b"\\x89PNG\\r\\n\\x1a\\n" + bytes(4) + b"IHDR" + (60000).to_bytes(4, "big") * 2)
    (60000, 60000)
    """
    be = lambda i, n: int.from_bytes(head[i:i + n], "big")  # noqa: E731
    le = lambda i, n: int.from_bytes(head[i:i + n], "little")  # noqa: E731
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return be(16, 4), be(20, 4)
    if head[:2] == b"BM" and len(head) >= 26:
        return le(18, 4), abs(int.from_bytes(head[22:26], "little", signed=True))
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        chunk = head[12:16]
        if chunk == b"VP8X":
            return 1 + le(24, 3), 1 + le(27, 3)
        if chunk == b"VP8L":
            bits = le(21, 4)
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if chunk == b"VP8 ":
            return le(26, 2) & 0x3FFF, le(28, 2) & 0x3FFF
    if head[:2] == b"\xff\xd8":
        return _jpeg_size(head, be)
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return _tiff_size(head, be if head[:2] == b"MM" else le)
    return None


def _jpeg_size(head: bytes, be) -> tuple[int, int] | None:
    i = 2
    while i + 9 <= len(head) and head[i] == 0xFF:
        marker = head[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start of frame
            return be(i + 7, 2), be(i + 5, 2)
        i += 2 + be(i + 2, 2)
    return None


def _tiff_size(head: bytes, num) -> tuple[int, int] | None:
    ifd, found = num(4, 4), {}
    for k in range(min(num(ifd, 2), 512)):
        entry = ifd + 2 + 12 * k
        tag, kind = num(entry, 2), num(entry + 2, 2)
        if tag in (256, 257):
            found[tag] = num(entry + 8, 2) if kind == 3 else num(entry + 8, 4)
    return (found[256], found[257]) if len(found) == 2 else None


def check_header(path: Path, head: bytes) -> None:
    """Refuse an image whose header claims more than ``MAX_PIXELS`` before decoding it (a few
    bytes can claim 60000x60000, 10 GiB of pixels: a decompression bomb)."""
    size = header_size(head)
    if size and size[0] * size[1] > MAX_PIXELS:
        raise RtstyleError(f"{path} claims {size[0]}x{size[1]} pixels ({size[0] * size[1] / 1e6:.0f} megapixels); "
                           f"rtstyle reads images of at most {MAX_PIXELS / 1e6:.0f} megapixels")


def animation(head: bytes) -> str | None:
    """The kind of an animated image (its first 64 KiB), None for a still: read as a still, it
    would silently lose every frame but the first.

    >>> animation(b"RIFF\\0\\0\\0\\0WEBPVP8X\\x0a\\0\\0\\0\\x12"), animation(b"GIF89a")
    ('WebP', None)
    """
    if head[:4] == b"RIFF" and head[8:16] == b"WEBPVP8X" and len(head) > 20 and head[20] & 0x02:
        return "WebP"  # the VP8X chunk's animation flag
    actl, idat = head.find(b"acTL"), head.find(b"IDAT")
    if head[:8] == b"\x89PNG\r\n\x1a\n" and actl >= 0 and (idat < 0 or actl < idat):
        return "PNG (APNG)"  # an animation control chunk before the image data
    if head[:3] == b"GIF" and b"NETSCAPE2.0" in head:
        return "GIF"  # the looping extension only animations carry
    return None


def check_still(path: Path, head: bytes) -> None:
    """Refuse an animated image where a still is read (``stylize``): FFmpeg decodes GIF and APNG
    animations as videos, not animated WebP."""
    kind = animation(head)
    if kind == "WebP":
        raise RtstyleError(f"{path} is an animated WebP: rtstyle styles stills, and FFmpeg cannot decode "
                           "animated WebP as a video; convert it to a video or GIF first")
    if kind:
        raise RtstyleError(f"{path} is an animated {kind}: for its frames use `rtstyle video` "
                           "(or `rtstyle upscale`, which decides by content)")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as an HxWx3 uint8 RGB array (gray is expanded, alpha dropped, 16-bit scaled,
    EXIF orientation applied)."""
    path = Path(path)
    if not path.is_file():
        raise unreadable_input(path, "image")
    with open(path, "rb") as f:
        check_still(path, f.read(1 << 16))
    return decode_image(np.fromfile(path, dtype=np.uint8), str(path))


def decode_image(data: bytes | np.ndarray, name: str = "the image") -> np.ndarray:
    """Encoded image bytes (a file's content, standard input) as ``read_image`` returns them."""
    data = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else data
    check_header(name, data[:1 << 16].tobytes())
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # a damaged file is our one-line error, not its warnings
    # Always 3 channels (gray expanded, alpha dropped), turned by the EXIF orientation as viewers show it.
    try:
        with _quiet_stderr():
            img = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH) if data.size else None
    except cv2.error as e:  # OpenCV's own checks (its pixel limit, a damaged header)
        raise RtstyleError(f"{name} is not a readable image ({str(e).strip().splitlines()[-1][:120]})") from None
    if img is None:
        raise RtstyleError(f"{name} is not a readable image")
    if img.dtype == np.uint16:
        img = (img / 257).round().astype(np.uint8)
    elif img.dtype != np.uint8:
        raise RtstyleError(f"{name} holds {img.dtype} pixels; save it with 8 or 16 bits per channel")
    return np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))


def read_stdin_image() -> np.ndarray:
    """The image piped into standard input (``-`` on the command line)."""
    if sys.stdin is None or sys.stdin.isatty():
        raise RtstyleError("- reads an image from standard input, but it is a terminal; pipe an image in")
    return decode_image(sys.stdin.buffer.read(), "standard input")


def image_output(src: str, output: str | None, default: Callable[[Path], Path], overwrite: bool) -> Path | None:
    """Where a one-image command writes, checked before the work: None for standard output (``-o -``,
    or ``-`` in with no ``-o``), else ``output`` or ``default(Path(src))``, an image file that is
    not the input and exists only with ``overwrite``."""
    if output == "-" or (output is None and src == "-"):
        return None
    dest = Path(output) if output else default(Path(src))
    check_output([] if src == "-" else [Path(src)], dest, overwrite)
    if dest.suffix.lower() not in IMAGE_EXTS:
        raise RtstyleError(f"output {dest} needs an image extension ({', '.join(IMAGE_EXTS)})")
    return dest


def write_stdout_png(rgb: np.ndarray) -> None:
    """``rgb`` as a PNG on standard output (``-o -``)."""
    sys.stdout.buffer.write(encode_image(rgb, ".png"))
    sys.stdout.buffer.flush()


def encode_image(rgb: np.ndarray, ext: str) -> bytes:
    """An HxWx3 uint8 RGB array as the bytes of an image file of type ``ext`` (".png", ".jpg" ...)."""
    ok, buf = cv2.imencode(ext.lower() or ".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RtstyleError(f"cannot encode a {rgb.shape[1]}x{rgb.shape[0]} image as {ext}"
                           + (" (WebP holds at most 16383x16383)" if ext == ".webp" and max(rgb.shape[:2]) > 16383 else ""))
    return buf.tobytes()


def write_image(path: str | os.PathLike, rgb: np.ndarray, overwrite: bool = False) -> Path:
    """Write an HxWx3 uint8 RGB array; the format follows the extension. Atomic: temp file, then
    published (a full disk leaves no partial file and says so; an existing file is replaced only
    with ``overwrite``)."""
    path = Path(path)
    data = encode_image(rgb, path.suffix)
    with atomic_output(path, overwrite) as tmp:
        tmp.write_bytes(data)
    return path


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
