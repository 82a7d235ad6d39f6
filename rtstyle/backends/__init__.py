"""Inference backends: one interface for every way rtstyle can run a transform net.

A backend is a callable taking an NCHW float tensor in [0, 1] on ``backend.device`` and returning
the net's output there. Callers pad inputs to a multiple of ``multiple_of`` themselves.
"""
from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from rtstyle.errors import RtstyleError

BACKENDS = ("auto", "torch")
PRECISIONS = ("fp32", "fp16")


class Backend(Protocol):
    name: str
    device: torch.device
    dtype: torch.dtype

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_backend(net: nn.Module, meta: dict, backend: str = "auto", device: str | torch.device | None = None,
                 precision: str = "fp32") -> Backend:
    """Wrap ``net`` (with its metadata) in the requested backend; ``auto`` picks the fastest available."""
    from rtstyle.backends.torch_eager import TorchBackend

    device = torch.device(device) if device else default_device()
    if precision not in PRECISIONS:
        raise RtstyleError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if backend in ("auto", "torch"):
        return TorchBackend(net, device, precision)
    raise RtstyleError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
