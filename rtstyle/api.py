"""The Python API: ``import rtstyle`` is enough.

``rtstyle.stylize(image, "candy")`` and ``rtstyle.upscale(image, 4)`` take a path, an HxWx3 uint8
RGB numpy array or a PIL image, and return the same kind (a path in: the written file's path out).
``rtstyle.Stylizer`` keeps a model open for many frames; ``rtstyle.video`` runs the video pipeline
on a file. Nothing is printed unless ``verbose=True``; every expected failure is an
``rtstyle.RtstyleError`` with a one-line message.

Opened models are cached per (model, backend, device, precision), so a loop of ``stylize`` calls
loads each model once.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Union

import numpy as np

from rtstyle.errors import RtstyleError, verbosity
from rtstyle.frames import Options, process
from rtstyle.imageio import IMAGE_EXTS, read_image, write_image
from rtstyle.models import Model, model_label, open_model
from rtstyle.outputs import check_output

Image = Union[str, os.PathLike, np.ndarray, Any]  # Any: a PIL.Image.Image


@functools.lru_cache(maxsize=8)
def _open(model: str, kind: str, backend: str, device: str | None, precision: str, frames: int | None) -> Model:
    return open_model(model, kind, backend, device, precision, frames)


def _frames(image: Image) -> int:
    """How many frames one call processes: N for an NxHxWx3 array, else 1."""
    return image.shape[0] if isinstance(image, np.ndarray) and image.ndim == 4 else 1


def _to_array(image: Image) -> tuple[np.ndarray, str]:
    """(HxWx3 or NxHxWx3 uint8 RGB, the input's kind: "path", "array" or "pil")."""
    if isinstance(image, (str, os.PathLike)):
        return read_image(image), "path"
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (3, 4) or image.shape[-1] != 3:
            raise RtstyleError(f"expected an HxWx3 (or NxHxWx3) uint8 RGB array, got {image.dtype} {image.shape}")
        return image, "array"
    if hasattr(image, "convert") and hasattr(image, "mode"):  # PIL, without importing it
        return np.array(image.convert("RGB")), "pil"
    raise RtstyleError(f"expected a path, a numpy array or a PIL image, not {type(image).__name__}")


def _destination(src: Path, output: str | os.PathLike | None, name: str, overwrite: bool) -> Path:
    """Where a path's result goes, checked before the work: ``STEM.NAME.EXT`` beside it by default."""
    dest = Path(output) if output else src.with_name(f"{src.stem}.{name}{src.suffix}")
    if dest.suffix.lower() not in IMAGE_EXTS:
        raise RtstyleError(f"output {dest} needs an image extension ({', '.join(IMAGE_EXTS)})")
    return check_output(src, dest, overwrite, how="overwrite=True")


def _run(image: Image, model: Model, label: str, options: Options, output, overwrite: bool) -> Image:
    rgb, kind = _to_array(image)
    dest = _destination(Path(image), output, label, overwrite) if kind == "path" else None
    result = process(model, rgb, options)
    if kind == "array":
        return result
    if kind == "pil":
        from PIL import Image as PILImage

        return PILImage.fromarray(result)
    return write_image(dest, result, overwrite)


class Stylizer:
    """A style model opened once, for many frames or images.

    ``Stylizer("candy")(frame)`` returns the stylized frame: an HxWx3 (or NxHxWx3) uint8 RGB array
    for an array, a PIL image for a PIL image, the written file's path for a path.
    ``backend``: auto, torch, onnxruntime, compile or tensorrt; ``device``: cpu, cuda, ...
    ``frames``: how many frames it will see, if known; with a few, ``auto`` on a CPU skips the
    one-off ONNX export and backend probe (eager PyTorch, unless a faster backend is built already).
    """

    kind = "style"

    def __init__(self, style: str = "candy", *, backend: str = "auto", device: str | None = None,
                 precision: str = "fp32", strength: float = 1.0, preserve_color: bool = False,
                 max_side: int | None = None, tile: int | None = None, frames: int | None = None,
                 verbose: bool = False):
        self.options = Options(max_side=max_side, strength=strength, preserve_color=preserve_color, tile=tile)
        self.verbose = verbose
        with verbosity(silent=not verbose, progress=False):
            self.model = _open(str(style), self.kind, backend, device, precision, frames)
        # Output names follow the CLI's: a zoo style (or blend) by its name, a model file by its stem.
        self.label = model_label(str(style), self.model.path)

    @property
    def backend(self) -> str:
        """The backend that runs the net (what ``auto`` chose)."""
        return self.model.backend.name

    def __call__(self, image: Image, output: str | os.PathLike | None = None, overwrite: bool = False) -> Image:
        with verbosity(silent=not self.verbose, progress=False):
            return _run(image, self.model, self.label, self.options, output, overwrite)


class Upscaler(Stylizer):
    """A super-resolution model opened once: ``Upscaler(4)(image)`` is the image at 4x its size."""

    kind = "sr"

    def __init__(self, scale: int = 4, *, model: str | None = None, **kwargs):
        if scale not in (4, 8):
            raise RtstyleError(f"scale must be 4 or 8, not {scale}")
        from rtstyle.models import DEFAULT_SR

        super().__init__(model or DEFAULT_SR[scale], **kwargs)
        if self.model.scale != scale:
            raise RtstyleError(f"model {model} upscales x{self.model.scale}, not x{scale}")


def stylize(image: Image, style: str = "candy", *, output: str | os.PathLike | None = None,
            overwrite: bool = False, backend: str = "auto", device: str | None = None, strength: float = 1.0,
            preserve_color: bool = False, max_side: int | None = None, verbose: bool = False) -> Image:
    """``image`` in the style ``style`` (a shipped or trained model's name, or a model file).

    A path writes ``STEM.STYLE.EXT`` beside it (or ``output``) and returns that path."""
    return Stylizer(style, backend=backend, device=device, strength=strength, preserve_color=preserve_color,
                    max_side=max_side, frames=_frames(image), verbose=verbose)(image, output, overwrite)


def upscale(image: Image, scale: int = 4, *, model: str | None = None, output: str | os.PathLike | None = None,
            overwrite: bool = False, tile: int | None = None, backend: str = "auto", device: str | None = None,
            verbose: bool = False) -> Image:
    """``image`` super-resolved ``scale`` (4 or 8) times; ``tile`` bounds the memory of large images."""
    return Upscaler(scale, model=model, backend=backend, device=device, tile=tile, frames=_frames(image),
                    verbose=verbose)(image, output, overwrite)


def video(src: str | os.PathLike, dst: str | os.PathLike | None = None, *, style: str = "candy",
          overwrite: bool = False, backend: str = "auto", device: str | None = None, precision: str = "fp32",
          strength: float = 1.0, preserve_color: bool = False, max_side: int | None = None,
          side_by_side: bool = False, codec: str | None = None, crf: int | None = None, batch: int = 1,
          verbose: bool = False):
    """Stylize every frame of the video ``src`` into ``dst`` (default ``STEM.STYLE.mp4`` beside it),
    keeping timestamps, rotation and audio. Returns the run's ``Report`` (frames, seconds, fps)."""
    from rtstyle.stream import video_command

    options = Options(max_side=max_side, strength=strength, preserve_color=preserve_color, side_by_side=side_by_side)
    with verbosity(silent=not verbose, progress=verbose):
        return video_command(str(src), str(dst) if dst else None, str(style), "style", backend, precision, device,
                             options, codec, crf, batch, overwrite)
