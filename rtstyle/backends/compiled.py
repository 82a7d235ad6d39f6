"""``torch.compile``: on CUDA, FP16 kernels in channels_last with CUDA graphs (``reduce-overhead``).

Each input shape compiles (and records a CUDA graph) once. So that a video does not recompile,
inputs are padded up to shape buckets: the batch to a power of two (by repeating the last frame,
which leaves every real frame's output unchanged) and height and width to a multiple of ``SPATIAL``
(by reflection, then cropped back). On the CPU compiling is allowed when asked for, but ``auto``
never picks it: it measured slower than eager there (about 0.55x, after 20-30 s per shape).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rtstyle.errors import RtstyleError

SPATIAL = 32  # height/width bucket: a 1080p frame runs as 1088x1920


def bucket(n: int, h: int, w: int, spatial: int = SPATIAL) -> tuple[int, int, int]:
    """The compiled shape an NxHxW input runs as."""
    return 1 << (n - 1).bit_length(), -(-h // spatial) * spatial, -(-w // spatial) * spatial


class CompiledBackend:
    name = "compile"

    def __init__(self, net: nn.Module, device: torch.device, precision: str = "fp16", mode: str | None = None,
                 spatial: int = SPATIAL):
        if precision == "fp16" and device.type != "cuda":
            raise RtstyleError("fp16 needs a CUDA device; use --precision fp32 on the CPU")
        self.device, self.spatial = device, spatial
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.net = net.eval().to(device=device, dtype=self.dtype, memory_format=torch.channels_last)
        self.cuda_graphs = device.type == "cuda"
        mode = mode or ("reduce-overhead" if self.cuda_graphs else None)
        self.fn = torch.compile(self.net, mode=mode, dynamic=False, fullgraph=True)

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        bn, bh, bw = bucket(n, h, w, self.spatial)
        x = x.to(self.dtype)
        if (bh, bw) != (h, w):
            mode = "reflect" if bh - h < h and bw - w < w else "replicate"
            x = F.pad(x, (0, bw - w, 0, bh - h), mode=mode)
        if bn != n:
            x = torch.cat([x, x[-1:].expand(bn - n, -1, -1, -1)])
        x = x.contiguous(memory_format=torch.channels_last)
        if self.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        y = self.fn(x)
        s = y.shape[-1] // bw
        # A CUDA graph's output buffer is overwritten by its next replay: hand out a copy.
        return y[:n, :, : h * s, : w * s].clone()
