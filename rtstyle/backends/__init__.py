"""Inference backends: one interface for every way rtstyle can run a transform net.

A backend is a callable taking an NCHW float tensor in [0, 1] on ``backend.device`` and returning
the net's output there (in ``backend.dtype``). Callers pad inputs to a multiple of ``multiple_of``
themselves.

- ``torch``: eager PyTorch, everywhere; the reference the others are tested against.
- ``onnxruntime``: the exported ONNX file through ONNX Runtime on the CPU.
- ``compile``: ``torch.compile``; on CUDA with FP16, channels_last and CUDA graphs.
- ``tensorrt``: a serialized TensorRT (or TensorRT-RTX) engine, FP16 by default.
- ``auto``: TensorRT when it is importable and CUDA is present, else ``compile`` on CUDA, else
  whichever of ``onnxruntime`` (FP32, or INT8 with precision ``auto`` once built and checked) and
  ``torch`` (FP32, or BF16 with precision ``auto`` on a CPU with native bf16, checked against FP32)
  measured faster on this CPU (measured once per architecture and machine, remembered in
  the engine folder). A job of a few frames (``frames`` <= ``QUICK_FRAMES``: one photo, a contact
  sheet) does not pay for an ONNX export or a probe: it takes eager PyTorch unless a faster
  backend was measured before and its files are already built. It says what it chose, and why, on stderr.
"""
from __future__ import annotations

import copy
import json
import math
import os
import platform
import time
from typing import Protocol

import onnxruntime
import torch
import torch.nn.functional as F
from torch import nn

from rtstyle.backends import onnxrt
from rtstyle.backends.cache import CPU_CHOICE_FILE, cpu_choice, read_cpu_choices, remember_cpu_choices  # noqa: F401 (CPU_CHOICE_FILE: part of this interface)
from rtstyle.backends.compiled import CompiledBackend
from rtstyle.backends.tensorrt import TensorRTBackend, import_tensorrt
from rtstyle.backends.torch_eager import TorchBackend, cpu_has_native_bf16
from rtstyle.errors import RtstyleError, say

BACKENDS = ("auto", "tensorrt", "compile", "onnxruntime", "torch")
PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8")  # auto: fp32, or bf16/int8 where --backend auto finds it faster
BF16_MIN_PSNR = 40.0  # dB against FP32 on the bundled photo: below it ``auto`` does not pick BF16
# The output frame (height, width) the CPU choice is measured at (SR nets: input PROBE_SHAPE / scale): a
# video frame, since the ranking changes with size (on one AMX CPU ONNX Runtime won at 256x256 and
# bf16 eager PyTorch at 640x360, 1.4x faster)
PROBE_SHAPE = (360, 640)
QUICK_FRAMES = 8  # up to this many (megapixel) frames, a one-off export (15-20 s) costs more than it saves


class Backend(Protocol):
    name: str
    device: torch.device
    dtype: torch.dtype

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(spec: str | torch.device | None) -> torch.device:
    """``--device`` as a device that exists here (default: CUDA if present); anything else is a
    one-line error, not a failure deep inside the first tensor moved there.

    >>> resolve_device("cpu"), resolve_device(None).type in ("cpu", "cuda")
    (device(type='cpu'), True)
    """
    if spec is None or spec == "":
        return default_device()
    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError, TypeError):
        raise RtstyleError(f"unknown device {spec!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "this PyTorch is built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise RtstyleError(f"--device {spec}: {why}; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise RtstyleError(f"--device {spec}: there are {torch.cuda.device_count()} CUDA GPU(s) (cuda:0 ...)")
        return device
    module = getattr(torch, device.type, None)
    if module is None or not hasattr(module, "is_available") or not module.is_available():
        raise RtstyleError(f"--device {spec}: no {device.type} device here; use cpu or cuda")
    return device


def load_backend(net: nn.Module, meta: dict, backend: str = "auto", device: str | torch.device | None = None,
                 precision: str = "fp32", frames: int | None = None) -> Backend:
    """Wrap ``net`` (with its metadata) in the requested backend; ``auto`` picks the fastest available
    for a job of ``frames`` frames of up to a megapixel (``megapixel_frames`` for smaller ones;
    None: many, or not known)."""
    device = resolve_device(device)
    if precision not in PRECISIONS:
        raise RtstyleError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if backend not in BACKENDS:
        raise RtstyleError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if backend == "auto":
        return _auto(net, meta, device, precision, frames)
    precision = "fp32" if precision == "auto" else precision
    if precision == "int8" and backend != "onnxruntime":
        raise RtstyleError("int8 runs through ONNX Runtime on the CPU: use --backend onnxruntime (or auto)")
    if precision == "bf16" and backend != "torch":
        raise RtstyleError("bf16 runs through eager PyTorch: use --backend torch (or auto)")
    if backend == "torch":
        return TorchBackend(net, device, precision)
    if backend == "onnxruntime":
        return onnxrt.OnnxRuntimeBackend(net, meta, device, precision)
    if backend == "compile":
        return CompiledBackend(net, device, precision)
    return TensorRTBackend(net, meta, device, precision)


def megapixel_frames(frames: int, width: int, height: int) -> int:
    """``frames`` frames of width x height counted as 1-megapixel frames (at least 1): what
    ``load_backend``'s ``frames`` counts for a short clip.

    >>> megapixel_frames(96, 384, 216), megapixel_frames(1, 4000, 3000)
    (8, 12)
    """
    return max(1, math.ceil(frames * width * height / 1e6))


def _auto(net: nn.Module, meta: dict, device: torch.device, precision: str, frames: int | None) -> Backend:
    if device.type != "cpu":
        precision = "fp32" if precision == "auto" else precision
        if precision == "int8":
            raise RtstyleError("int8 runs through ONNX Runtime on the CPU; on CUDA use --precision fp16 or fp32")
    if precision == "bf16":
        say(f"backend auto: torch bf16 (bf16 runs through eager PyTorch{_bf16_speed(device)})")
        return load_backend(net, meta, "torch", device, precision)
    if device.type == "cuda":
        choice = "tensorrt" if import_tensorrt() is not None else "compile"
        say(f"backend auto: {choice} ({'TensorRT importable' if choice == 'tensorrt' else 'no TensorRT'}, "
             f"CUDA {torch.cuda.get_device_name(device)})")
        return load_backend(net, meta, choice, device, precision)
    if device.type != "cpu":
        return load_backend(net, meta, "torch", device, precision)
    if frames is not None and frames <= QUICK_FRAMES and precision != "int8":
        return _quick_cpu(net, meta, device, precision, frames)
    return _fastest_cpu(net, meta, device, precision)


def _quick_cpu(net: nn.Module, meta: dict, device: torch.device, precision: str, frames: int) -> Backend:
    """A job of a few frames: the fastest CPU backend measured before among those already built
    (no export), else eager PyTorch."""
    if precision == "fp16":
        raise RtstyleError("fp16 needs a CUDA device; use --precision fp32 or int8 on the CPU")
    from rtstyle.backends.onnx import is_built

    candidates = {"torch": lambda: TorchBackend(net, device, "fp32")}
    if is_built(net, meta):
        candidates["onnxruntime"] = lambda: onnxrt.OnnxRuntimeBackend(net, meta, device)
    if precision == "auto" and not _int8_note(net, meta):
        candidates["onnxruntime-int8"] = lambda: onnxrt.OnnxRuntimeBackend(net, meta, device, "int8")
    if precision == "auto" and cpu_has_native_bf16() and not _bf16_note(net, meta):
        candidates["torch-bf16"] = lambda: TorchBackend(net, device, "bf16")
    ms = cpu_choice(read_cpu_choices(), _cpu_key(meta), set(candidates))
    if ms and len(ms) > 1:
        choice = min(ms, key=ms.get)
        say(f"backend auto: {_label(choice)} (fastest of the built backends when measured on this CPU: {_fmt(ms)})")
        return candidates[choice]()
    say(f"backend auto: torch ({frames} frame{'s' if frames > 1 else ''}: an ONNX export and a backend probe "
        "would cost more than they save)")
    return candidates["torch"]()


def _cpu_key(meta: dict) -> str:
    """What the CPU measurement depends on: the architecture, this CPU and thread count, the versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return json.dumps([meta["arch"], cpu, os.cpu_count(), torch.get_num_threads(), torch.__version__,
                       onnxruntime.__version__, PROBE_SHAPE], sort_keys=True)


def _time_ms(fn, x: torch.Tensor) -> float:
    start = time.perf_counter()
    fn(x)
    return (time.perf_counter() - start) * 1000


def measure_cpu(candidates: dict[str, Backend], shape: tuple[int, int] = PROBE_SHAPE, rounds: int = 3) -> dict[str, float]:
    """Best-of-``rounds`` milliseconds per 1x3x``shape`` frame for each backend, interleaved so that
    load from other processes hits every candidate alike."""
    x = torch.rand(1, 3, *shape)
    for _ in range(2):  # warm-up: allocations, ONNX Runtime's first-run graph work, oneDNN's kernels
        for fn in candidates.values():
            fn(x)
    best = {name: float("inf") for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            best[name] = min(best[name], _time_ms(fn, x))
    return {name: round(ms, 2) for name, ms in best.items()}


def _fastest_cpu(net: nn.Module, meta: dict, device: torch.device, precision: str) -> Backend:
    """Eager PyTorch, ONNX Runtime FP32 or (precision ``auto``) ONNX Runtime INT8, whichever measured
    fastest for this architecture on this CPU. INT8 competes only once built for this model (built
    by ``--precision int8`` or ``rtstyle export --precision int8``: its calibration costs seconds,
    which a first run must not pay) and only if it passed its quality check."""
    if precision == "fp16":
        raise RtstyleError("fp16 needs a CUDA device; use --precision fp32 or int8 on the CPU")
    if precision == "int8":
        say("backend auto: onnxruntime int8 (int8 runs through ONNX Runtime)")
        return onnxrt.OnnxRuntimeBackend(net, meta, device, "int8")
    builders = {"torch": lambda: TorchBackend(net, device, "fp32"),
                "onnxruntime": lambda: onnxrt.OnnxRuntimeBackend(net, meta, device)}
    int8_note, bf16_note = (_int8_note(net, meta), _bf16_note(net, meta)) if precision == "auto" else ("", "")
    note = int8_note + bf16_note
    if precision == "auto" and not int8_note:
        builders["onnxruntime-int8"] = lambda: onnxrt.OnnxRuntimeBackend(net, meta, device, "int8")
    if precision == "auto" and cpu_has_native_bf16() and not bf16_note:
        builders["torch-bf16"] = lambda: TorchBackend(net, device, "bf16")
    known, key = read_cpu_choices(), _cpu_key(meta)
    ms = cpu_choice(known, key, set(builders))
    loaded = {}
    for name in sorted(ms, key=ms.get) if ms else list(builders):  # fastest first when measured
        try:
            loaded[name] = builders[name]()
        except Exception as e:  # an export or session failure must not stop a run that eager PyTorch can do
            if name == "torch":
                raise
            what = "ONNX Runtime" if name.startswith("onnx") else "bf16"
            say(f"backend auto: {_label(name)} left out ({what} unavailable for this model: "
                f"{e.__class__.__name__}: {str(e)[:200]})")
            continue
        if ms:
            say(f"backend auto: {_label(name)} (faster on this CPU when measured: {_fmt(ms)}{note})")
            return loaded[name]
    if len(loaded) == 1:
        name, backend = loaded.popitem()
        say(f"backend auto: {_label(name)} (the only one available)")
        return backend
    ms = measure_cpu(loaded, _probe_input(meta))
    known[key] = ms
    remembered = remember_cpu_choices(known)
    choice = min(ms, key=ms.get)
    say(f"backend auto: {_label(choice)} (measured now on this CPU: {_fmt(ms)}{note}; {remembered})")
    return loaded[choice]


def _int8_note(net: nn.Module, meta: dict) -> str:
    """Why INT8 is not a candidate for this model ("" when it is)."""
    from rtstyle.backends.onnx import INT8_MIN_PSNR, int8_path, int8_quality

    quality = int8_quality(int8_path(net, meta))
    if quality is None:
        return "; int8 not built for this model: --precision int8 builds it once"
    if quality["psnr_db_vs_fp32"] < INT8_MIN_PSNR:
        return f"; int8 left out: {quality['psnr_db_vs_fp32']:.1f} dB from fp32, under {INT8_MIN_PSNR:.0f} dB"
    return ""


def _bf16_note(net: nn.Module, meta: dict) -> str:
    """Why BF16 is not a candidate for this model on this CPU ("" when it is): not native here, or
    its output on the bundled photo is under ``BF16_MIN_PSNR`` dB from FP32's."""
    if not cpu_has_native_bf16():
        return ""  # nothing to say: most CPUs have no bf16, and emulated it is slower than fp32
    psnr = bf16_psnr(net, _probe_input(meta))
    return "" if psnr >= BF16_MIN_PSNR else f"; bf16 left out: {psnr:.1f} dB from fp32, under {BF16_MIN_PSNR:.0f} dB"


def bf16_psnr(net: nn.Module, shape: tuple[int, int]) -> float:
    """PSNR (dB) of the net's BF16 output against its FP32 output on the bundled photo resized to ``shape``."""
    from rtstyle.demo import PHOTO
    from rtstyle.imageio import read_image, to_tensor

    x = F.interpolate(to_tensor(read_image(PHOTO)), size=shape, mode="area")
    with torch.inference_mode():
        ref = copy.deepcopy(net).eval().float()(x).float()
        low = copy.deepcopy(net).eval().to(torch.bfloat16)(x.to(torch.bfloat16)).float()
    return round(10 * math.log10(1 / max((ref - low).pow(2).mean().item(), 1e-12)), 2)


def _bf16_speed(device: torch.device) -> str:
    if device.type == "cpu" and not cpu_has_native_bf16():
        return "; this CPU has no native bf16, so it is emulated and slower than fp32"
    return ""


def _probe_input(meta: dict) -> tuple[int, int]:
    """The probe's input (height, width): a PROBE_SHAPE output (an x4 SR net fed 640x360 would spend
    seconds per probe run, a minute in all, before the first frame).

    >>> _probe_input({"arch": {"kind": "sr", "scale": 8}}), _probe_input({"arch": {"kind": "style"}})
    ((45, 80), (360, 640))
    """
    arch = meta["arch"]
    scale = arch.get("scale", 1) if arch.get("kind") == "sr" else 1
    return tuple(max(side // scale, 16) for side in PROBE_SHAPE)


def _label(name: str) -> str:
    return name.replace("-", " ")


def _fmt(ms: dict[str, float]) -> str:
    return ", ".join(f"{name} {v:.0f} ms" for name, v in ms.items()) + f" per {PROBE_SHAPE[1]}x{PROBE_SHAPE[0]} output frame"
