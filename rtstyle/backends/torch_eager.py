"""Eager PyTorch: runs everywhere, the reference every other backend is checked against.

BF16 on a CPU is fast only where the CPU computes it natively (AMX, AVX512-BF16): 2.6x FP32 at
640x360 measured on one with AMX (benchmarks/cpu_vs_peer.py), and emulated, slower than FP32,
elsewhere; ``auto`` measures it before taking it.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from rtstyle.errors import RtstyleError

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class TorchBackend:
    name = "torch"

    def __init__(self, net: nn.Module, device: torch.device, precision: str = "fp32"):
        if precision == "fp16" and device.type == "cpu":
            raise RtstyleError("fp16 needs a CUDA device; use --precision fp32 (or bf16) on the CPU")
        if precision not in DTYPES:
            raise RtstyleError(f"eager PyTorch runs {', '.join(DTYPES)}, not {precision}")
        self.device, self.precision, self.dtype = device, precision, DTYPES[precision]
        # a copy for another dtype: auto builds fp32 and bf16 candidates from the same net
        net = net if self.dtype == torch.float32 else copy.deepcopy(net)
        self.net = net.eval().to(device=device, dtype=self.dtype)
        if device.type == "cuda":
            self.net = self.net.to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x.to(self.dtype))


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (Linux's ``avx512_bf16`` or ``amx_bf16`` flag)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
