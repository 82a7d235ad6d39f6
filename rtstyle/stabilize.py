"""Temporal stabilisation of stylized video (``rtstyle video --stabilize``, ``cam --stabilize``).

A feed-forward style net sees each frame alone, so its strokes re-draw themselves from frame to
frame: flicker. ``Stabilizer`` keeps the previous *stabilised* output, moves it along the optical
flow of the *input* frames (OpenCV's Farneback, on the CPU at the net's resolution or lower) and
blends it into the fresh output where that flow can be trusted:

    S_t = F_t + alpha * w * (warp(S_{t-1}) - F_t)

``w`` in [0, 1] is the flow's confidence per pixel: 0 where the forward-backward check fails
(occlusions, disocclusions, pixels that leave the frame), fading to 0 where the warped previous
input differs from the current input by more than film grain does (something new came in front),
and 0 everywhere after a scene cut. Where ``w`` is 0 the fresh frame is taken as it is: no ghost
trails.

The history is recursive (S, not F, is warped) with a strong ``alpha`` (0.97 by default): a simple
blend of the previous *per-frame* output with weight 0.5 can at best halve the frame-to-frame change
even with a perfect flow, and in practice (flow errors) reached only 0.75-0.92x. Blending frames
whose strokes differ also averages the strokes away (the style washes out), and every bilinear
warp blurs the history a little more: the history is resampled bicubically and the blend's local
contrast is brought back up to the fresh frame's (``restore_contrast``). See README "Temporal
stability" for the measured alternatives (DIS flow, weaker alpha, a stricter photometric test: all
flicker more).
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
import torch
import torch.nn.functional as F

FLOW_SIDE = 320        # flow at most this many pixels on the longer side (the net's resolution if smaller)
FARNEBACK = (0.5, 3, 15, 3, 5, 1.2, 0)  # pyramid scale, levels, window, iterations, poly_n, poly_sigma, flags
FLAT = 2.0             # luma deviation (8-bit) of a frame flat enough that nothing after it takes its history
CUT_VALID = 0.35       # a frame where less of the image than this has a trusted flow is a scene cut
PHOTO_RAMP = (24.0, 64.0)  # 8-bit gray difference of the warped previous input where trust starts to fall, and is 0
CUT_RAMP = (16.0, 48.0)    # the same, stricter, for the share of the frame the history explains (scene cuts)


@dataclass
class Settings:
    """How strongly and at what resolution to stabilise (the alternatives the README measures)."""

    alpha: float = 0.97            # weight of the warped history where the flow is fully trusted
    recursive: bool = True         # warp the previous stabilised output (True) or the previous net output
    confidence: bool = True        # photometric fading of the trust (False: the consistency mask alone)
    flow_side: int = FLOW_SIDE     # longest side of the frames the flow is computed on
    method: str = "farneback"      # farneback or dis (OpenCV DIS, "fast" preset: 4x cheaper, see README)
    interp: str = "bicubic"        # how the history is resampled: bicubic blurs less per warp than bilinear
    restore: int = 11              # >0: restore the fresh frame's local contrast over this many pixels
    photo_ramp: tuple[float, float] = PHOTO_RAMP  # photometric trust: 1 below the first, 0 above the second
    drift: bool = True             # test the input the history remembers, not only the previous frame


def to_gray(rgb: np.ndarray, side: int) -> np.ndarray:
    """uint8 HxWx3 RGB -> uint8 gray, the longer side at most ``side`` (area-averaged)."""
    h, w = rgb.shape[:2]
    gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    f = side / max(h, w)
    if f < 1:
        gray = cv2.resize(gray, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    return gray


class Flow:
    """Dense optical flow between two gray frames: ``flow(a, b)[y, x] = (dx, dy)`` such that pixel
    (x, y) of ``a`` is found at (x + dx, y + dy) in ``b``."""

    def __init__(self, method: str = "farneback"):
        if method not in ("dis", "farneback"):
            raise ValueError(f"unknown flow method {method!r}")
        self.method = method
        # DIS's "fast" preset: ~5 ms a 320x180 flow on one core (Farneback ~21 ms), exact on textured
        # motion but inconsistent forward/backward on flat and dark regions, where it flickers more
        self.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST) if method == "dis" else None

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if self.dis is not None:
            return self.dis.calc(a, b, None)
        return cv2.calcOpticalFlowFarneback(a, b, None, *FARNEBACK)


def warp(img: np.ndarray, flow: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """``img`` sampled at (x + dx, y + dy): the previous frame moved onto the current one when
    ``flow`` is current -> previous. Bilinear; outside the frame the border is replicated (those
    pixels are masked out by ``consistency``).

    >>> img = np.arange(12, dtype=np.float32).reshape(3, 4)
    >>> warp(img, np.stack([np.ones((3, 4)), np.zeros((3, 4))], -1).astype(np.float32))[0].tolist()
    [1.0, 2.0, 3.0, 3.0]
    """
    return _remap(img, flow[..., 0], flow[..., 1], interpolation)


def _remap(img: np.ndarray, dx: np.ndarray, dy: np.ndarray, interpolation: int) -> np.ndarray:
    """``img`` sampled at each pixel's position moved by (``dx``, ``dy``) (HxW float32 each), borders replicated."""
    gx, gy = _grid(*dx.shape)
    return cv2.remap(img, gx + dx, gy + dy, interpolation, borderMode=cv2.BORDER_REPLICATE)


@lru_cache(maxsize=8)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel x and y coordinates, HxW float32 each (cached: every frame of a video needs the same; never written to)."""
    return np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))


def consistency(back: np.ndarray, fwd: np.ndarray) -> np.ndarray:
    """Where the flow can be trusted (bool HxW), for ``back`` = current -> previous and ``fwd`` =
    previous -> current: following ``back`` then ``fwd`` must come back to the start (Sundaram et
    al. 2010; Ruder et al. 2016's thresholds), and the previous position must be inside the frame.
    Occluded and disoccluded pixels fail it."""
    # on the x and y planes apart: numpy is 5x slower on the interleaved HxWx2 layout
    (bx, by), (fx, fy) = cv2.split(back), cv2.split(warp(fwd, back))
    err = (bx + fx) ** 2 + (by + fy) ** 2
    ok = err <= 0.01 * (bx * bx + by * by + fx * fx + fy * fy) + 0.5
    h, w = back.shape[:2]
    gx, gy = _grid(h, w)
    px, py = gx + bx, gy + by
    return ok & (px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1)


def trust(gray: np.ndarray, prev_moved: np.ndarray, back: np.ndarray, fwd: np.ndarray,
          confidence: bool = True, ramp: tuple[float, float] = PHOTO_RAMP) -> tuple[np.ndarray, float]:
    """Per-pixel weight in [0, 1] of the warped history, and the share of the frame it explains.

    The weight is the consistency mask, eroded by one pixel (flow is least reliable at motion
    edges, where trails would start), times (with ``confidence``) a photometric ramp: the previous
    input moved along ``back`` onto this frame (``prev_moved``, float; the stabiliser passes the
    input its history remembers) must look like the current input, within film grain and noise (the ramp's start) and not at all
    beyond its end (something new came in front). The share is the mean of both together, with
    the stricter ``CUT_RAMP`` and whatever ``confidence``: a scene cut is where the history
    explains little, and a cut between two busy textures passes a lenient test on part of the frame."""
    mask = cv2.erode(consistency(back, fwd).astype(np.float32), np.ones((3, 3), np.uint8))
    diff = cv2.blur(np.abs(gray.astype(np.float32) - prev_moved), (3, 3))
    photo, strict = (np.clip((hi - diff) / (hi - lo), 0, 1) for lo, hi in (ramp, CUT_RAMP))
    return (mask * photo if confidence else mask), float((mask * strict).mean())


class Stabilizer:
    """Stateful: call it on every frame in order, ``(net input, net output)`` as Nx3xHxW tensors in
    [0, 1] on any device; returns the stabilised outputs. Flow and trust are computed on the host at
    ``flow_side`` or lower; the warp and blend run where the tensors are (the GPU on CUDA).

    The flows and the trust depend on the inputs alone, so ``prepare(x)``, called before the net
    runs on ``x``, computes them in a worker thread while the net runs (OpenCV and the inference
    backends release the GIL); the call that follows only warps and blends."""

    def __init__(self, settings: Settings | None = None):
        self.settings = settings or Settings()
        self.flow = Flow(self.settings.method)
        self.worker = ThreadPoolExecutor(1, thread_name_prefix="rtstyle-flow")
        self.ahead: tuple[torch.Tensor, Future] | None = None
        self.reset()
        self.cuts = 0

    def reset(self) -> None:
        self.prev_gray: np.ndarray | None = None
        self.prev_seen: np.ndarray | None = None  # float gray: the input as the history remembers it
        self.prev_out: torch.Tensor | None = None
        if self.ahead is not None:  # dropped with the history, but finished first: one flow object, one thread at a time
            self.ahead[1].result()
        self.ahead = None

    def prepare(self, x: torch.Tensor) -> None:
        """Start the motion analysis of the next frames ``x`` (the net's input) in the background."""
        self.ahead = (x, self.worker.submit(self.motion, x, self.prev_gray, self.prev_seen, self.prev_out))

    def motion(self, x: torch.Tensor, prev_gray: np.ndarray | None, prev_seen: np.ndarray | None,
               prev_out: torch.Tensor | None) -> list[tuple]:
        """Per frame of ``x``: (its gray frame, the input as the new history remembers it, the trust
        weight of the history or None, the current -> previous flow, and for the first frame
        ``prev_out`` already warped and the weight at its size, or None). The weight is None at the
        first frame, after a size change or a flat frame, and all zero after a scene cut.

        With ``drift``, the photometric test compares the current input with ``prev_seen``, the
        inputs blended as the outputs are: a slow change (a fade, a light turning on) passes the
        frame-to-frame test every frame while the history lags ever further behind; this catches
        the lag once it exceeds the ramp."""
        s, out = self.settings, []
        for i in range(x.shape[0]):
            gray = _gray(x[i:i + 1], s.flow_side)
            seen, w, back, moved = gray.astype(np.float32), None, None, None
            # after a flat frame (black, as a clip starts or fades) the flow has nothing to follow,
            # and a cut from black to a dark scene passes the photometric test: start afresh
            if prev_gray is not None and prev_gray.shape == gray.shape and prev_gray.std() >= FLAT:
                back, fwd = self.flow(gray, prev_gray), self.flow(prev_gray, gray)
                # one warp serves the photometric test and the remembered input
                ref = warp((prev_seen if s.drift else prev_gray).astype(np.float32, copy=False), back)
                w, share = trust(gray, ref, back, fwd, s.confidence, s.photo_ramp)
                if share < CUT_VALID:
                    w = np.zeros_like(w)
                else:
                    seen += s.alpha * w * (ref - seen)
                    if i == 0 and prev_out is not None:
                        moved = self.moved(prev_out, w, back)
            out.append((gray, seen, w, back, moved))
            prev_gray, prev_seen = gray, seen
        return out

    def moved(self, prev_out: torch.Tensor, w: np.ndarray, back: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """The history moved along ``back`` onto the current frame, and its weight at that size."""
        size = prev_out.shape[-2:]
        return (warp_tensor(prev_out, back, size, self.settings.interp),
                _upsample(torch.from_numpy(w)[None, None].to(prev_out.device), size))

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        ahead, self.ahead = self.ahead, None
        moves = (ahead[1].result() if ahead is not None and ahead[0] is x
                 else self.motion(x, self.prev_gray, self.prev_seen, self.prev_out))
        return torch.cat([self.blend(y[i:i + 1], *m) for i, m in enumerate(moves)])

    def blend(self, y: torch.Tensor, gray: np.ndarray, seen: np.ndarray, w: np.ndarray | None,
              back: np.ndarray | None, moved: tuple | None) -> torch.Tensor:
        """One frame's 1x3xH'xW' output (H' = s H for an upscaling net) with the warped history blended in."""
        s = self.settings
        fresh = y
        if w is None or self.prev_out is None or self.prev_out.shape != y.shape:
            seen = gray.astype(np.float32)  # no history blended in: it remembers this frame alone
        elif not w.any():
            self.cuts += 1  # a scene cut (or chaos): start the history afresh
        else:
            history, wt = moved or self.moved(self.prev_out, w, back)
            y = torch.lerp(y, history, s.alpha * wt)
            if s.restore:
                y = restore_contrast(y, fresh, s.restore)
        self.prev_gray, self.prev_seen = gray, seen
        self.prev_out = y if s.recursive else fresh
        return y


def _gray(x: torch.Tensor, side: int) -> np.ndarray:
    """A 1x3xHxW [0, 1] tensor -> its uint8 BT.601 luma at most ``side`` pixels long, on the host."""
    h, w = x.shape[-2:]
    f = min(1.0, side / max(h, w))
    luma = _luma(x)  # before the resize: a third of the pixels to average
    small = F.interpolate(luma, size=(max(1, round(h * f)), max(1, round(w * f))), mode="area") if f < 1 else luma
    return small[0, 0].mul(255).add(0.5).clamp(0, 255).to(torch.uint8).cpu().numpy()


def _upsample(t: torch.Tensor, size) -> torch.Tensor:
    return t if tuple(t.shape[-2:]) == tuple(size) else F.interpolate(t, size=tuple(size), mode="bilinear",
                                                                       align_corners=False)


def box(t: torch.Tensor, k: int) -> torch.Tensor:
    """The k x k local mean of a 1xCxHxW tensor (k odd), the border's own pixels averaged."""
    if t.device.type == "cpu":  # OpenCV's running-sum box filter, plane by plane: ~10x torch's pooling on a CPU
        t, out = t.contiguous(), torch.empty_like(t, memory_format=torch.contiguous_format)
        for c in range(t.shape[1]):
            cv2.blur(t[0, c].numpy(), (k, k), dst=out[0, c].numpy())
        return out
    return F.avg_pool2d(t, k, 1, k // 2, count_include_pad=False)


def restore_contrast(y: torch.Tensor, fresh: torch.Tensor, k: int) -> torch.Tensor:
    """``y``'s local detail (minus its k x k mean) scaled up to the local contrast of ``fresh``.

    Blending two frames whose strokes differ averages the strokes away (blend weights a, b shrink
    uncorrelated detail to sqrt(a^2 + b^2) of its contrast): this puts the contrast back without
    adding any where the blend kept it (the scale is at least 1 and at most 2). The contrast is
    that of the luma, one scale for all three channels: 2.5x cheaper than per channel on a CPU."""
    ly, lf = _luma(y), _luma(fresh)
    mu_ly, mu_lf = box(ly, k), box(lf, k)
    var_y = box(ly * ly, k).sub_(mu_ly * mu_ly).clamp_(min=0).add_(1e-5)
    var_f = box(lf * lf, k).sub_(mu_lf * mu_lf).clamp_(min=0).add_(1e-5)
    scale = var_f.div_(var_y).sqrt_().clamp_(1, 2)
    mu_y = box(y, k)
    return (y - mu_y).mul_(scale).add_(mu_y).clamp_(0, 1)


def _luma(t: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of a 1x3xHxW tensor, 1x1xHxW."""
    return t[:, :1] * 0.299 + t[:, 1:2] * 0.587 + t[:, 2:] * 0.114


def warp_tensor(img: torch.Tensor, flow: np.ndarray, size, mode: str = "bilinear") -> torch.Tensor:
    """``warp`` for a 1xCxHxW tensor, with a (smaller) host flow scaled up to ``size`` = (H, W)."""
    h, w = size
    fh, fw = flow.shape[:2]
    if img.device.type == "cpu":  # OpenCV's remap: several times faster than grid_sample on a CPU
        # each component scaled up on its own: 5x faster than resizing the two-channel flow at once
        dx, dy = (cv2.resize(np.ascontiguousarray(flow[..., i]), (w, h), interpolation=cv2.INTER_LINEAR) * f
                  for i, f in ((0, w / fw), (1, h / fh)))
        moved = _remap(img[0].permute(1, 2, 0).contiguous().numpy(), dx, dy,
                       cv2.INTER_CUBIC if mode == "bicubic" else cv2.INTER_LINEAR)
        # back to planes: the blend's torch ops run several times faster on contiguous tensors
        return torch.from_numpy(moved).reshape(h, w, -1).permute(2, 0, 1)[None].contiguous().clamp_(0, 1)
    f = torch.from_numpy(flow).to(img.device).permute(2, 0, 1)[None]
    f = _upsample(f, size) * torch.tensor([w / fw, h / fh], device=img.device).view(1, 2, 1, 1)
    gy, gx = torch.meshgrid(torch.arange(h, device=img.device, dtype=torch.float32),
                            torch.arange(w, device=img.device, dtype=torch.float32), indexing="ij")
    # grid_sample's normalised coordinates (align_corners=True: -1 and 1 are the corner pixels' centres)
    grid = torch.stack([(gx + f[0, 0]) * 2 / max(w - 1, 1) - 1, (gy + f[0, 1]) * 2 / max(h - 1, 1) - 1], -1)[None]
    out = F.grid_sample(img, grid.to(img.dtype), mode=mode, padding_mode="border", align_corners=True)
    return out.clamp_(0, 1) if mode == "bicubic" else out
