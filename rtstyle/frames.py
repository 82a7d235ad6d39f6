"""Per-frame processing on the inference device, shared by video files, images and the camera.

``process(model, frames, options)`` takes uint8 RGB frames (HxWx3 or NxHxWx3), uploads them
once, does every conversion on the device (resize, pad to the net's multiple, inference, crop, scale
back, colour preservation, blending, side by side) and downloads uint8 frames.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from rtstyle.backends import Backend
from rtstyle.errors import RtstyleError
from rtstyle.models import Model


@dataclass
class Options:
    """What the user asked to change about each frame (the CLI's ``--max-side``, ``--size``, ...)."""

    max_side: int | None = None           # run the net at most this many pixels on the longer side
    size: tuple[int, int] | None = None   # run the net at exactly (width, height)
    strength: float = 1.0                 # 0 = the original, 1 = the net's output
    preserve_color: bool = False          # keep the original chroma, take the net's luminance
    side_by_side: bool = False            # original | processed
    tile: int | None = None               # process in tiles of this many input pixels (SR on big frames)
    tile_overlap: int = 16                # context each tile sees beyond its border (input pixels)
    stabilize: bool = False               # video: blend in the flow-warped previous output (rtstyle.stabilize)

    def __post_init__(self):
        if not 0.0 <= self.strength <= 1.0:
            raise RtstyleError(f"--strength must be between 0 and 1, not {self.strength}")
        if self.max_side is not None and self.max_side < 8:
            raise RtstyleError(f"--max-side must be at least 8, not {self.max_side}")
        if self.size is not None and min(self.size) < 8:
            raise RtstyleError(f"--size must be at least 8x8, not {self.size[0]}x{self.size[1]}")
        if self.tile is not None and self.tile < 16:
            raise RtstyleError(f"--tile must be at least 16, not {self.tile}")


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"640x360"`` -> (640, 360)."""
    if not text:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise RtstyleError(f"--size must look like WIDTHxHEIGHT (e.g. 640x360), not {text!r}") from None
    return w, h


def output_shape(model: Model, height: int, width: int, options: Options) -> tuple[int, int]:
    """(height, width) of the frames ``process`` returns for ``height`` x ``width`` input frames."""
    s = model.scale
    return height * s, width * s * (2 if options.side_by_side else 1)


def upload(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    """NxHxWx3 uint8 on the host -> Nx3xHxW float in [0, 1] on ``device`` (pinned, async copy on CUDA)."""
    x = torch.from_numpy(np.ascontiguousarray(frames))
    if device.type == "cuda":
        x = x.pin_memory().to(device, non_blocking=True)
    return x.permute(0, 3, 1, 2).contiguous().float().div_(255)


def download(x: torch.Tensor) -> np.ndarray:
    """Nx3xHxW float in [0, 1] -> NxHxWx3 uint8 on the host (converted on the device, so 4x less to copy)."""
    return x.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy()


def resize(x: torch.Tensor, height: int, width: int, mode: str = "bilinear") -> torch.Tensor:
    """Antialiased when shrinking; bilinear by default (bicubic costs 2x on a CPU for no visible gain
    on the nets' smooth outputs)."""
    if x.shape[-2:] == (height, width):
        return x
    return F.interpolate(x, size=(height, width), mode=mode, align_corners=False,
                         antialias=height < x.shape[-2]).clamp_(0, 1)


# The smallest input the nets take: their reflection pads need more pixels than they pad (4 for the
# 9x9 convolutions; 1 after the style net's two stride-2 convolutions, where 8 pixels are 2).
MIN_SIDE = 8


def run_padded(backend: Backend, x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Reflect-pad ``x`` to a multiple of ``multiple`` (and to at least ``MIN_SIDE``), run the net,
    crop the output back."""
    h, w = x.shape[-2:]
    ph, pw = max(-h % multiple, MIN_SIDE - h), max(-w % multiple, MIN_SIDE - w)
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    y = backend(x).float()
    s = y.shape[-1] // x.shape[-1]
    return y[..., : h * s, : w * s]


def run_tiled(backend: Backend, x: torch.Tensor, multiple: int, scale: int, tile: int, overlap: int) -> torch.Tensor:
    """Run the net on overlapping tiles and keep each tile's centre: seamless for convolutional nets
    whose receptive field fits in ``overlap`` (SR nets in eval mode), and memory stays bounded."""
    n, c, h, w = x.shape
    out = x.new_empty(n, c, h * scale, w * scale)
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            cy0, cx0 = max(0, y0 - overlap), max(0, x0 - overlap)
            y = run_padded(backend, x[..., cy0:min(h, y1 + overlap), cx0:min(w, x1 + overlap)], multiple)
            oy, ox = (y0 - cy0) * scale, (x0 - cx0) * scale
            out[..., y0 * scale:y1 * scale, x0 * scale:x1 * scale] = \
                y[..., oy:oy + (y1 - y0) * scale, ox:ox + (x1 - x0) * scale]
    return out


_RGB_TO_YCBCR = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def preserve_color(stylized: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """The stylized luminance with the original's chroma (BT.601 YCbCr): the style's strokes, the source's colours.

    Over a gray stylized pixel of luma 0.5, an orange original (luma 0.508) keeps its colour and
    takes the stylized luma: each channel drops by the difference.

    >>> orange, gray = torch.tensor([0.8, 0.4, 0.3]).view(1, 3, 1, 1), torch.full((1, 3, 1, 1), 0.5)
    >>> [round(v, 3) for v in preserve_color(gray, orange).flatten().tolist()]
    [0.792, 0.392, 0.292]
    """
    m = _RGB_TO_YCBCR.to(stylized.device)
    luma = torch.einsum("ij,njhw->nihw", m[:1], stylized)
    chroma = torch.einsum("ij,njhw->nihw", m[1:], original)
    return torch.einsum("ij,njhw->nihw", torch.linalg.inv(m), torch.cat([luma, chroma], 1)).clamp_(0, 1)


# Luma standard deviation (8-bit levels) of a frame below which a style net's output is faded out
# towards the frame, and above which it is taken whole (``fade_flat``).
FLAT_CONTRAST = (2.0, 8.0)


def fade_flat(x: torch.Tensor, y: torch.Tensor, contrast: tuple[float, float] = FLAT_CONTRAST) -> torch.Tensor:
    """A style net's outputs ``y``, faded towards their inputs ``x`` where a frame has almost no contrast.

    Instance normalisation makes the nets blind to contrast: a frame at 1% of its brightness
    (a fade from black) is normalised back to full contrast, and so are its noise and compression
    blocks, which come out as a full-strength pattern that changes every frame. Below the first
    luma standard deviation the frame is shown as it is, above the second the style is whole, and
    in between (a fade) the style fades in with the frame's contrast. Real footage and photos lie
    far above (a luma deviation of 47-86 levels on the shared clips).

    >>> black, noise = torch.zeros(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    >>> bool(torch.equal(fade_flat(black, noise), black)), bool(torch.equal(fade_flat(noise, black), black))
    (True, True)
    """
    lo, hi = contrast
    s = x[..., ::4, ::4]  # every 16th pixel: the same deviation within a level, 16x cheaper
    luma = s[:, :1] * 0.299 + s[:, 1:2] * 0.587 + s[:, 2:] * 0.114
    spread = luma.flatten(1).std(1, correction=0).mul(255)
    g = ((spread - lo) / (hi - lo)).clamp(0, 1).view(-1, 1, 1, 1)
    return y if bool((g == 1).all()) else torch.lerp(x, y, g.to(y.dtype))


@torch.inference_mode()
def process_tensor(model: Model, x: torch.Tensor, options: Options, stabilizer=None) -> torch.Tensor:
    """Nx3xHxW float in [0, 1] on the device -> the processed frames, still on the device.
    ``stabilizer`` (a ``rtstyle.stabilize.Stabilizer``, for consecutive video frames) works at the
    net's resolution, before scaling back."""
    backend, scale, multiple = model.backend, model.scale, model.multiple
    h, w = x.shape[-2:]
    if options.size:
        net_w, net_h = options.size
    elif options.max_side and max(h, w) > options.max_side:
        f = options.max_side / max(h, w)
        net_h, net_w = max(1, round(h * f)), max(1, round(w * f))
    else:
        net_h, net_w = h, w
    small = resize(x, net_h, net_w)
    if stabilizer is not None:
        stabilizer.prepare(small)  # its optical flow runs while the net does
    if options.tile and (net_h > options.tile or net_w > options.tile):
        y = run_tiled(backend, small, multiple, scale, options.tile, options.tile_overlap)
    else:
        y = run_padded(backend, small, multiple)
    if model.kind == "style":
        y = fade_flat(small, y)
    if stabilizer is not None:
        y = stabilizer(small, y)
    y = resize(y, h * scale, w * scale)
    if options.preserve_color or options.strength < 1 or options.side_by_side:
        original = resize(x, h * scale, w * scale, "bicubic")  # SR's baseline is bicubic
        if options.preserve_color:
            y = preserve_color(y, original)
        if options.strength < 1:
            y = torch.lerp(original, y, options.strength)
        if options.side_by_side:
            y = torch.cat([original, y], dim=-1)
    return y


def process(model: Model, frames: np.ndarray, options: Options | None = None, stabilizer=None) -> np.ndarray:
    """uint8 RGB frames (HxWx3 or NxHxWx3, or a ``yuv.YuvBatch``) -> processed uint8 RGB frames of the same rank.

    Running out of memory (a frame too large for the net at full size) is a one-line error that
    names the option bounding memory: ``--tile`` for SR nets, ``--max-side`` for style nets."""
    single = frames.ndim == 3
    try:
        device = model.backend.device
        # A ``yuv.YuvBatch`` (decoded planes) uploads and converts itself on the device.
        x = frames.upload(device) if hasattr(frames, "upload") else upload(frames[None] if single else frames, device)
        y = process_tensor(model, x, options or Options(), stabilizer)
        if not torch.isfinite(y).all():  # NaN would be written as black frames
            raise RtstyleError(f"the net's output is not finite (NaN or infinite values) on {model.backend.device}"
                               + ("; try --precision fp32" if model.backend.dtype == torch.float16 else ""))
        y = download(y)
    except (MemoryError, RuntimeError) as e:  # torch.OutOfMemoryError on CUDA; a RuntimeError from the CPU allocator
        if not isinstance(e, (MemoryError, torch.OutOfMemoryError)) and "allocate memory" not in str(e):
            raise
        h, w = frames.shape[-3:-1]
        raise RtstyleError(f"out of memory processing {w}x{h} frames on {model.backend.device}; "
                           f"{memory_advice(model, options or Options(), 1 if single else frames.shape[0])}") from None
    return y[0] if single else y


def memory_advice(model: Model, options: Options, batch: int) -> str:
    """What would make a frame that ran out of memory fit: only options that are not already at
    their smallest (no "--max-side 8" for a run given --max-side 8).

    >>> memory_advice(Model.wrap(None, {"arch": {"kind": "style"}}), Options(max_side=8), 1)
    'even the smallest settings do not fit: free some memory, or use a machine with more'
    """
    hints = ["--batch 1"] if batch > 1 else []
    if model.scale > 1 and (not options.tile or options.tile > 32):
        hints.append(f"--tile {max(16, options.tile // 2) if options.tile else 256}")
    if model.scale == 1 and (not options.max_side or options.max_side > 16):
        hints.append(f"--max-side {max(8, options.max_side // 2) if options.max_side else 1280}")
    if model.backend is not None and model.backend.device.type == "cuda":
        hints.append("--device cpu")
    if not hints:
        return "even the smallest settings do not fit: free some memory, or use a machine with more"
    return f"bound the memory with {' or '.join(hints)}"
