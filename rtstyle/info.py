"""``rtstyle info``: what this installation is and can do, for bug reports and for choosing options.

Versions, devices, which backends can run here and why the others cannot, and the folders rtstyle
reads models from and caches exports in.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform
import sys

import torch

from rtstyle import __version__, models
from rtstyle.backends import BACKENDS
from rtstyle.backends.cache import CPU_CHOICE_FILE, engine_dir
from rtstyle.backends.tensorrt import import_tensorrt
from rtstyle.vgg import ENV_VAR as VGG_ENV, VGG16_URL, hub_cache_path

PACKAGES = ("torch", "numpy", "onnxruntime", "onnx", "onnxscript", "av", "opencv-python-headless", "opencv-python",
            "typer", "safetensors", "tqdm", "pillow", "matplotlib", "tensorrt", "tensorrt-rtx-cu13-bindings")


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")),
                        platform.processor() or platform.machine())
    except OSError:
        return platform.processor() or platform.machine()


def devices() -> list[dict]:
    found = [{"device": "cpu", "name": _cpu(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
              "isa": torch.backends.cpu.get_cpu_capability()}]
    for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
        p = torch.cuda.get_device_properties(i)
        found.append({"device": f"cuda:{i}", "name": p.name, "memory_gib": round(p.total_memory / 2**30, 1),
                      "capability": f"{p.major}.{p.minor}"})
    return found


def backends() -> dict[str, dict]:
    """{backend: {"available": bool, "why": str}} for this machine."""
    cuda = torch.cuda.is_available()
    no_cuda = "no CUDA device" + (" (this PyTorch is a CPU-only build)" if torch.version.cuda is None else "")
    try:
        import onnxruntime
        ort = (True, f"ONNX Runtime {onnxruntime.__version__}, providers "
                     + ", ".join(onnxruntime.get_available_providers()))
    except ImportError:
        ort = (False, "onnxruntime is not installed: pip install onnxruntime")
    exporter = importlib.util.find_spec("onnxscript") is not None
    if ort[0] and not exporter:
        ort = (False, "the ONNX export needs onnxscript: pip install onnxscript")
    trt = import_tensorrt()
    if trt is None:
        tensorrt = (False, "no TensorRT module: pip install 'rtstyle[tensorrt]' (or tensorrt-rtx-cu13-libs "
                           "tensorrt-rtx-cu13-bindings for RTX GPUs)")
    elif not cuda:
        tensorrt = (False, f"{trt.__name__} {trt.__version__} is installed, but {no_cuda}"
                           + (" (TensorRT-RTX still builds engines: rtstyle export --format tensorrt)"
                              if trt.__name__.startswith("tensorrt_rtx") else ""))
    else:
        tensorrt = (True, f"{trt.__name__} {trt.__version__}")
    table = {
        "auto": (True, "picks the fastest of those available"),
        "tensorrt": tensorrt,
        "compile": (cuda, "torch.compile on CUDA (FP16, CUDA graphs)" if cuda else
                    f"{no_cuda}; on the CPU it runs when asked for, but auto never picks it (slower than eager)"),
        "onnxruntime": ort,
        "torch": (True, f"eager PyTorch {torch.__version__}"),
    }
    return {name: {"available": table[name][0], "why": table[name][1]} for name in BACKENDS if name in table}


def opencv() -> dict:
    import cv2

    gui = next((line.split(":", 1)[1].strip() for line in cv2.getBuildInformation().splitlines()
                if line.strip().startswith("GUI:")), "unknown")
    return {"version": cv2.__version__, "gui": gui,
            "headless": gui in ("NONE", "unknown") or _version("opencv-python-headless") is not None
            and _version("opencv-python") is None}


def vgg_source() -> str:
    if os.environ.get(VGG_ENV):
        return f"${VGG_ENV} = {os.environ[VGG_ENV]}"
    if hub_cache_path().is_file():
        return str(hub_cache_path())
    return f"not downloaded yet; training and eval fetch {VGG16_URL} (528 MB) into {hub_cache_path().parent}"


def collect() -> dict:
    shipped = [name for name, path, _ in models.list_models() if path.parent == models.SHIPPED_DIR]
    user = [name for name, path, _ in models.list_models() if path.parent != models.SHIPPED_DIR]
    return {
        "rtstyle": __version__, "python": sys.version.split()[0], "platform": platform.platform(),
        "packages": {name: v for name in PACKAGES if (v := _version(name)) is not None},
        "opencv": opencv(), "torch_cuda": torch.version.cuda, "devices": devices(), "backends": backends(),
        "folders": {"shipped models": f"{models.SHIPPED_DIR} ({len(shipped)} models)",
                    "user models": f"{models.user_dir()} ({len(user)} models; ${models.ENV_VAR})",
                    "engines and exports": f"{engine_dir()} (${'RTSTYLE_ENGINE_DIR'}; CPU choice in {CPU_CHOICE_FILE})",
                    "VGG-16 weights": vgg_source(),
                    "shared data": os.environ.get("RTSTYLE_SHARED") or "not set ($RTSTYLE_SHARED)"},
    }


def format_info(r: dict) -> str:
    lines = [f"rtstyle {r['rtstyle']} (Python {r['python']}, {r['platform']})", "", "packages:"]
    lines += [f"  {k:<28} {v}" for k, v in r["packages"].items()]
    lines += [f"  {'OpenCV GUI':<28} {r['opencv']['gui']}" + (" (headless: no camera window)" if r["opencv"]["headless"]
                                                                else "")]
    lines += ["", "devices:"]
    lines += [f"  {d['device']:<8} {d['name']}" + (f", {d['cores']} cores, {d['torch_threads']} torch threads, {d['isa']}"
                                                   if d["device"] == "cpu" else f", {d['memory_gib']} GiB")
              for d in r["devices"]]
    lines += ["", "backends (--backend):"]
    lines += [f"  {name:<12} {'yes' if b['available'] else 'no ':<4} {b['why']}" for name, b in r["backends"].items()]
    lines += ["", "folders:"] + [f"  {k:<20} {v}" for k, v in r["folders"].items()]
    return "\n".join(lines)
