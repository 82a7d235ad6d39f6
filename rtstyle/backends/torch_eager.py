"""Eager PyTorch: runs everywhere, the reference every other backend is checked against."""
from __future__ import annotations

import torch
from torch import nn

from rtstyle.errors import RtstyleError


class TorchBackend:
    name = "torch"

    def __init__(self, net: nn.Module, device: torch.device, precision: str = "fp32"):
        if precision == "fp16" and device.type == "cpu":
            raise RtstyleError("fp16 needs a CUDA device; use --precision fp32 on the CPU")
        self.device = device
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.net = net.eval().to(device=device, dtype=self.dtype)
        if device.type == "cuda":
            self.net = self.net.to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x.to(self.dtype))
