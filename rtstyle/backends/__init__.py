"""Inference backends: one interface for every way rtstyle can run a transform net.

A backend is a callable taking an NCHW float tensor in [0, 1] on ``backend.device`` and returning
the net's output there (in ``backend.dtype``). Callers pad inputs to a multiple of ``multiple_of``
themselves.

- ``torch``: eager PyTorch, everywhere; the reference the others are tested against.
- ``onnxruntime``: the exported ONNX file through ONNX Runtime on the CPU.
- ``compile``: ``torch.compile``; on CUDA with FP16, channels_last and CUDA graphs.
- ``tensorrt``: a serialized TensorRT (or TensorRT-RTX) engine, FP16 by default.
- ``auto``: TensorRT when it is importable and CUDA is present, else ``compile`` on CUDA, else
  whichever of ``onnxruntime`` and ``torch`` measured faster on this CPU (measured once per
  architecture and machine, remembered in the engine folder). It says what it chose on stderr.
"""
from __future__ import annotations

import json
import os
import platform
import time
from typing import Protocol

import onnxruntime
import torch
from torch import nn

from rtstyle.backends import onnxrt
from rtstyle.backends.cache import CPU_CHOICE_FILE, cpu_choice, read_cpu_choices, remember_cpu_choices  # noqa: F401 (CPU_CHOICE_FILE: part of this interface)
from rtstyle.backends.compiled import CompiledBackend
from rtstyle.backends.tensorrt import TensorRTBackend, import_tensorrt
from rtstyle.backends.torch_eager import TorchBackend
from rtstyle.errors import RtstyleError, say

BACKENDS = ("auto", "tensorrt", "compile", "onnxruntime", "torch")
PRECISIONS = ("fp32", "fp16")
PROBE_SIZE = 256  # square input the CPU choice is measured at


class Backend(Protocol):
    name: str
    device: torch.device
    dtype: torch.dtype

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def parse_device(name: str | torch.device | None) -> torch.device:
    """A device name (``cpu``, ``cuda``, ``cuda:1``, ``mps``) -> a device this machine has; default:
    CUDA when present, else the CPU. A device it does not have is a one-line error.

    >>> parse_device("cpu")
    device(type='cpu')
    """
    if name is None or name == "":
        return default_device()
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise RtstyleError(f"unknown device {str(name)!r}; use cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = ("this PyTorch is a CPU-only build" if torch.version.cuda is None
                   else "no CUDA GPU or driver was found")
            raise RtstyleError(f"device {name} asked for, but CUDA is not available ({why}); use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise RtstyleError(f"device {name} asked for, but only {torch.cuda.device_count()} CUDA device(s) exist")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise RtstyleError(f"device {name} asked for, but MPS is not available on this machine")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise RtstyleError(f"device {name}: rtstyle runs on cpu, cuda or mps")
    return device


def load_backend(net: nn.Module, meta: dict, backend: str = "auto", device: str | torch.device | None = None,
                 precision: str = "fp32") -> Backend:
    """Wrap ``net`` (with its metadata) in the requested backend; ``auto`` picks the fastest available."""
    device = parse_device(device)
    if precision not in PRECISIONS:
        raise RtstyleError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if backend not in BACKENDS:
        raise RtstyleError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if backend == "auto":
        return _auto(net, meta, device, precision)
    if backend == "torch":
        return TorchBackend(net, device, precision)
    if backend == "onnxruntime":
        return onnxrt.OnnxRuntimeBackend(net, meta, device, precision)
    if backend == "compile":
        return CompiledBackend(net, device, precision)
    return TensorRTBackend(net, meta, device, precision)


def _auto(net: nn.Module, meta: dict, device: torch.device, precision: str) -> Backend:
    if device.type == "cuda":
        choice = "tensorrt" if import_tensorrt() is not None else "compile"
        say(f"backend auto: {choice} ({'TensorRT importable' if choice == 'tensorrt' else 'no TensorRT'}, "
             f"CUDA {torch.cuda.get_device_name(device)})")
        return load_backend(net, meta, choice, device, precision)
    if device.type != "cpu":
        return load_backend(net, meta, "torch", device, precision)
    return _fastest_cpu(net, meta, device, precision)


def _cpu_key(meta: dict) -> str:
    """What the CPU measurement depends on: the architecture, this CPU and thread count, the versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return json.dumps([meta["arch"], cpu, os.cpu_count(), torch.get_num_threads(), torch.__version__,
                       onnxruntime.__version__], sort_keys=True)


def _time_ms(fn, x: torch.Tensor) -> float:
    start = time.perf_counter()
    fn(x)
    return (time.perf_counter() - start) * 1000


def measure_cpu(candidates: dict[str, Backend], size: int = PROBE_SIZE, rounds: int = 3) -> dict[str, float]:
    """Best-of-``rounds`` milliseconds per 1x3x``size``x``size`` frame for each backend, interleaved
    so that load from other processes hits every candidate alike."""
    x = torch.rand(1, 3, size, size)
    for fn in candidates.values():
        fn(x)  # warm-up: allocations, ONNX Runtime's first-run graph work
    best = {name: float("inf") for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            best[name] = min(best[name], _time_ms(fn, x))
    return {name: round(ms, 2) for name, ms in best.items()}


def _fastest_cpu(net: nn.Module, meta: dict, device: torch.device, precision: str) -> Backend:
    """Eager PyTorch or ONNX Runtime, whichever measured faster for this architecture on this CPU."""
    if precision != "fp32":
        raise RtstyleError("fp16 needs a CUDA device; use --precision fp32 on the CPU")
    known, key = read_cpu_choices(), _cpu_key(meta)
    ms = cpu_choice(known, key)
    if ms and min(ms, key=ms.get) == "torch":
        say(f"backend auto: torch (faster on this CPU when measured: {_fmt(ms)})")
        return TorchBackend(net, device, precision)
    try:
        ort = onnxrt.OnnxRuntimeBackend(net, meta, device)
    except Exception as e:  # an export or session failure must not stop a run that eager PyTorch can do
        say(f"backend auto: torch (ONNX Runtime unavailable for this model: {e.__class__.__name__}: {str(e)[:200]})")
        return TorchBackend(net, device, precision)
    if ms:
        say(f"backend auto: onnxruntime (faster on this CPU when measured: {_fmt(ms)})")
        return ort
    candidates = {"torch": TorchBackend(net, device, precision), "onnxruntime": ort}
    ms = measure_cpu(candidates)
    known[key] = ms
    remembered = remember_cpu_choices(known)
    choice = min(ms, key=ms.get)
    say(f"backend auto: {choice} (measured now on this CPU: {_fmt(ms)}; {remembered})")
    return candidates[choice]


def _fmt(ms: dict[str, float]) -> str:
    return ", ".join(f"{name} {v:.0f} ms" for name, v in ms.items()) + f" per {PROBE_SIZE}x{PROBE_SIZE} frame"
