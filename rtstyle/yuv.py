"""YUV -> RGB on the inference device: decoded frames travel as their Y, U and V planes.

A decoded H.264/HEVC/VP9 frame is 8-bit YUV (4:2:0 mostly): 1.5 bytes a pixel against RGB's 3, and
the conversion (swscale on one CPU core per frame, ~2-5 ms at 1080p) is arithmetic a GPU does in
microseconds. So on CUDA the pipeline uploads the planes and converts here with the frame's own
matrix (BT.601, BT.709, BT.2020) and range (limited 16-235 or full 0-255), the same choice PyAV's
``to_ndarray(format="rgb24")`` makes (unspecified -> BT.601, as swscale does). Formats this does not
cover (10-bit, NV12, RGB sources) are converted on the host as before: ``host_frame`` decides.
"""
from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np
import torch

# 8-bit planar YUV formats: name -> (chroma subsampling (x, y), full range by definition)
PLANAR = {"yuv420p": ((2, 2), False), "yuvj420p": ((2, 2), True), "yuv422p": ((2, 1), False),
          "yuvj422p": ((2, 1), True), "yuv444p": ((1, 1), False), "yuvj444p": ((1, 1), True)}
# AVColorSpace -> (Kr, Kb); anything else (unspecified, FCC, ...) is converted as BT.601
MATRICES = {1: (0.2126, 0.0722), 9: (0.2627, 0.0593), 10: (0.2627, 0.0593)}
BT601 = (0.299, 0.114)
AVCOL_RANGE_JPEG = 2


@dataclass
class YuvFrame:
    """One decoded frame as host planes (uint8) and how to read them."""

    y: np.ndarray            # H x W
    u: np.ndarray            # H/sy x W/sx
    v: np.ndarray
    kr_kb: tuple[float, float]
    full_range: bool

    @property
    def shape(self) -> tuple[int, int, int]:
        """As the RGB frame it stands for: (H, W, 3)."""
        return (*self.y.shape, 3)


def _plane(frame: av.VideoFrame, i: int, height: int, width: int) -> np.ndarray:
    """A plane without its line padding (a copy: the decoder reuses the frame's buffers)."""
    p = frame.planes[i]
    return np.frombuffer(p, np.uint8).reshape(-1, p.line_size)[:height, :width].copy()


def host_frame(frame: av.VideoFrame, yuv: bool) -> np.ndarray | YuvFrame:
    """What the decode thread hands on: the planes when ``yuv`` and the format is covered, else RGB."""
    layout = PLANAR.get(frame.format.name) if yuv else None
    if layout is None:
        return frame.to_ndarray(format="rgb24")
    (sx, sy), full = layout
    h, w = frame.height, frame.width
    ch, cw = -(-h // sy), -(-w // sx)
    return YuvFrame(_plane(frame, 0, h, w), _plane(frame, 1, ch, cw), _plane(frame, 2, ch, cw),
                    MATRICES.get(frame.colorspace, BT601), full or frame.color_range == AVCOL_RANGE_JPEG)


def to_rgb(y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, kr_kb: tuple[float, float],
           full_range: bool) -> torch.Tensor:
    """Nx1xHxW Y and Nx1xhxw U, V (uint8, any device) -> Nx3xHxW float RGB in [0, 1].

    Chroma is upsampled by repetition (each chroma sample covers its 2x2 or 2x1 block), as
    swscale's default conversion does. Limited-range white is Y 235 (full range: 255), no chroma 128:

    >>> y = torch.full((1, 1, 2, 2), 235, dtype=torch.uint8); c = torch.full((1, 1, 1, 1), 128, dtype=torch.uint8)
    >>> [round(v, 4) for v in to_rgb(y, c, c, BT601, False)[0, :, 0, 0].tolist()]
    [1.0, 1.0, 1.0]
    >>> [round(v, 4) for v in to_rgb(y, c, c, BT601, True)[0, :, 0, 0].tolist()]
    [0.9216, 0.9216, 0.9216]
    """
    kr, kb = kr_kb
    yf, uf, vf = y.float(), u.float() - 128, v.float() - 128
    if full_range:
        yf, uf, vf = yf / 255, uf / 255, vf / 255
    else:
        yf, uf, vf = (yf - 16) / 219, uf / 224, vf / 224
    if uf.shape[-2:] != yf.shape[-2:]:
        fy, fx = -(-yf.shape[-2] // uf.shape[-2]), -(-yf.shape[-1] // uf.shape[-1])
        uv = torch.cat([uf, vf], 1).repeat_interleave(fy, -2).repeat_interleave(fx, -1)
        uf, vf = uv[:, :1, : yf.shape[-2], : yf.shape[-1]], uv[:, 1:, : yf.shape[-2], : yf.shape[-1]]
    r = yf + 2 * (1 - kr) * vf
    b = yf + 2 * (1 - kb) * uf
    g = (yf - kr * r - kb * b) / (1 - kr - kb)
    return torch.cat([r, g, b], 1).clamp_(0, 1)


class YuvBatch:
    """Frames of one size and colour setting as planes; ``frames.process`` takes it for an RGB batch."""

    def __init__(self, frames: list[YuvFrame]):
        self.frames = frames
        self.ndim = 4
        self.shape = (len(frames), *frames[0].shape)

    def upload(self, device: torch.device) -> torch.Tensor:
        """Copy the planes (pinned, asynchronous on CUDA) and convert on ``device``."""
        f0 = self.frames[0]

        def planes(name: str) -> torch.Tensor:
            x = torch.from_numpy(np.stack([getattr(f, name) for f in self.frames]))[:, None]
            return x.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else x
        return to_rgb(planes("y"), planes("u"), planes("v"), f0.kr_kb, f0.full_range)


def batch(frames: list) -> np.ndarray | YuvBatch:
    """Stack decoded frames for one net call: RGB arrays into one array, planes into a ``YuvBatch``.
    (Every frame of a stream has one format; a mid-stream change is converted on the host.)"""
    if all(isinstance(f, YuvFrame) for f in frames):
        same = {(f.y.shape, f.u.shape, f.kr_kb, f.full_range) for f in frames}
        if len(same) == 1:
            return YuvBatch(frames)
    return np.stack([rgb(f) for f in frames])


def rgb(frame: np.ndarray | YuvFrame) -> np.ndarray:
    """An RGB uint8 array of either kind of decoded frame (converted on the CPU)."""
    if not isinstance(frame, YuvFrame):
        return frame
    x = to_rgb(*(torch.from_numpy(p)[None, None] for p in (frame.y, frame.u, frame.v)), frame.kr_kb, frame.full_range)
    return x.mul_(255).add_(0.5).to(torch.uint8)[0].permute(1, 2, 0).numpy()


def use_device_yuv(device: torch.device, requested: bool | None = None) -> bool:
    """Convert on the device: by default on CUDA (on a CPU it is the same arithmetic as swscale, in torch)."""
    return device.type == "cuda" if requested is None else requested
