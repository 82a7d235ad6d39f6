"""TensorRT (or TensorRT-RTX): engine builds cached in the engine folder, and the backend running them.

Engines are named ``<style>-<model hash>-<precision>-<gpu>-trt<version>.engine`` and carry a JSON
sidecar; an engine whose sidecar does not match what is asked for (model, GPU, TensorRT version,
precision, shapes) or whose bytes do not match the sidecar's checksum is rebuilt, never trusted.

TensorRT comes in two Python modules with the same API: ``tensorrt`` (datacenter GPUs such as the
H100) and ``tensorrt_rtx`` (GeForce/RTX GPUs; it can build engines ahead of time without any GPU).
Both builds here use a *strongly typed* network: the precision is the ONNX file's own types
(``rtstyle.backends.onnx.to_fp16``). TensorRT-RTX has no FP16 builder flag, TensorRT 10.12
deprecated it and TensorRT 11 removed it, so this one route works with all of them.

The backend binds torch tensors' device pointers directly (no host round trips) and runs on the
current torch CUDA stream, so the engine is ordered after the preprocessing that made its input
and before whatever consumes its output.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import re
import sys
import time
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from rtstyle.backends.cache import cached_stem, engine_dir, model_hash, slug, write_bytes
from rtstyle.backends.onnx import cached_onnx
from rtstyle.errors import RtstyleError, progress as progress_bar, say
from rtstyle.nets import multiple_of

WORKSPACE_MB = 4096  # a limit, not an allocation; batch 4 at 1088x1920 needs more than 2 GiB


def import_tensorrt() -> ModuleType | None:
    """``tensorrt`` if installed, else TensorRT-RTX (``tensorrt_rtx``, or its standalone-wheel name)."""
    for name in ("tensorrt", "tensorrt_rtx", "tensorrt_rtx_bindings"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "Builder"):  # the `tensorrt` metapackage alone is an empty stub
            return module
    return None


def is_rtx(trt: ModuleType) -> bool:
    return trt.__name__.startswith("tensorrt_rtx")


def trt_version(trt: ModuleType) -> str:
    return ("rtx" if is_rtx(trt) else "") + trt.__version__


def gpu_name(trt: ModuleType) -> str:
    """The GPU an engine is built for: this machine's, or ``portable`` for a TensorRT-RTX
    ahead-of-time build without a GPU (it runs on any Ampere or newer RTX GPU)."""
    if torch.cuda.is_available():
        return slug(torch.cuda.get_device_name())
    if is_rtx(trt):
        return "portable"
    raise RtstyleError("building a TensorRT engine needs a CUDA GPU (TensorRT-RTX can build one without: "
                       "pip install tensorrt-rtx-cu13-libs tensorrt-rtx-cu13-bindings)")


def _parse_hw(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        raise RtstyleError(f"shape {text!r} is not HEIGHTxWIDTH (for example 720x1280)")
    return int(m[1]), int(m[2])


def profile(meta: dict, shapes: dict | None = None, max_batch: int = 4) -> dict:
    """An optimisation profile {min, opt, max: [batch, height, width]} (input sizes, rounded up to
    the net's multiple). ``shapes`` holds optional "HxW" strings under min/opt/max."""
    arch = meta["arch"]
    scale = arch.get("scale", 1) if arch["kind"] == "sr" else 1
    multiple = multiple_of(arch)
    hw = {"min": (32, 32), "opt": (720 // scale, 1280 // scale), "max": (1088 // scale, 1920 // scale)}
    for key, text in (shapes or {}).items():
        if text:
            hw[key] = _parse_hw(text)
    if max_batch < 1:
        raise RtstyleError("--max-batch must be at least 1")
    up = lambda v: -(-v // multiple) * multiple  # noqa: E731
    prof = {k: [1 if k != "max" else max_batch, up(h), up(w)] for k, (h, w) in hw.items()}
    if not all(prof["min"][i] <= prof["opt"][i] <= prof["max"][i] for i in range(3)):
        raise RtstyleError(f"shapes must satisfy min <= opt <= max, got {prof}")
    if min(prof["min"][1:]) < 8:
        raise RtstyleError("the smallest input the nets take is 8x8")
    return prof


def covers(prof: dict, shape: tuple[int, ...]) -> bool:
    """Whether an NCHW input shape lies within the profile."""
    n, _, h, w = shape
    return all(lo <= v <= hi for lo, v, hi in zip(prof["min"], (n, h, w), prof["max"]))


def engine_path(trt: ModuleType, net: nn.Module, meta: dict, precision: str) -> Path:
    name = f"{cached_stem(net, meta)}-{precision}-{gpu_name(trt)}-trt{trt_version(trt)}"
    return engine_dir() / f"{name}.engine"


def _sidecar(engine: Path) -> Path:
    return engine.with_suffix(".json")


def engine_is_valid(engine: Path, expected: dict, prof: dict | None = None) -> tuple[bool, str]:
    """(ok, why not): the engine exists, its sidecar matches ``expected`` and its bytes their checksum."""
    side = _sidecar(engine)
    if not engine.is_file() or not side.is_file():
        return False, "no engine built yet"
    try:
        info = json.loads(side.read_text())
    except (OSError, ValueError):
        info = None
    if not isinstance(info, dict):
        return False, "its sidecar is unreadable"
    for key, value in expected.items():
        if info.get(key) != value:
            return False, f"it was built for {key} {info.get(key)!r}, not {value!r}"
    if prof:
        try:
            ok = all(covers(info["profile"], (n, 3, h, w)) for n, h, w in (prof["min"], prof["max"]))
        except (KeyError, TypeError, ValueError):  # a sidecar edited or damaged by hand
            ok = False
        if not ok:
            return False, f"its shape profile {info.get('profile')} does not cover {prof}"
    if hashlib.sha256(engine.read_bytes()).hexdigest() != info.get("sha256"):
        return False, "its bytes do not match its checksum (corrupt or truncated)"
    return True, ""


def ensure_engine(net: nn.Module, meta: dict, precision: str = "fp16", prof: dict | None = None,
                  force: bool = False, trt: ModuleType | None = None) -> Path:
    """The cached engine for this model, GPU and TensorRT version; built (or rebuilt) when missing,
    stale, corrupt, or when its profile does not cover ``prof``."""
    trt = trt or import_tensorrt()
    if trt is None:
        raise RtstyleError("TensorRT is not installed: pip install tensorrt (datacenter GPUs) or "
                           "pip install tensorrt-rtx-cu13-libs tensorrt-rtx-cu13-bindings (RTX GPUs)")
    prof = prof or profile(meta)
    path = engine_path(trt, net, meta, precision)
    expected = {"model_hash": model_hash(net, meta), "precision": precision, "gpu": gpu_name(trt),
                "tensorrt": trt_version(trt)}
    ok, why = engine_is_valid(path, expected, prof)
    if ok and not force:
        return path
    say(f"building a TensorRT {precision} engine for {meta.get('name', 'the model')} ({why or 'forced'}); "
         f"cached as {path}")
    start = time.perf_counter()
    data = build_engine(trt, cached_onnx(net, meta, precision), prof)
    write_bytes(path, data)
    info = {**expected, "style": meta.get("name"), "arch": meta["arch"], "profile": prof,
            "sha256": hashlib.sha256(data).hexdigest(), "build_seconds": round(time.perf_counter() - start, 1),
            "built": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_bytes(_sidecar(path), json.dumps(info, indent=1).encode())
    say(f"engine built in {info['build_seconds']} s ({len(data) / 2**20:.1f} MiB)")
    return path


def _progress_monitor(trt: ModuleType):
    """A TensorRT build progress monitor: one tqdm bar for the top-level build phases."""
    class Monitor(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)
            self.bars = {}

        def phase_start(self, phase_name, parent_phase, num_steps):
            if parent_phase is None:
                self.bars[phase_name] = progress_bar(total=num_steps, desc=phase_name, leave=False)

        def step_complete(self, phase_name, step):
            bar = self.bars.get(phase_name)
            if bar is not None:
                bar.update(step + 1 - bar.n)
            return True

        def phase_finish(self, phase_name):
            bar = self.bars.pop(phase_name, None)
            if bar is not None:
                bar.close()

    return Monitor()


def build_engine(trt: ModuleType, onnx_path: Path, prof: dict, workspace_mb: int = WORKSPACE_MB) -> bytes:
    """Parse ``onnx_path`` into a strongly typed network and build a serialized engine for ``prof``.

    With ``tensorrt`` the timing cache (kernel timings, per GPU and version) is kept beside the
    engines so that later builds are fast; TensorRT-RTX ignores timing caches (its kernels are
    compiled just in time on the user's GPU) and using one would force a GPU into its CPU-only build.
    """
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RtstyleError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    opt = builder.create_optimization_profile()
    name = network.get_input(0).name
    opt.set_shape(name, *[(n, 3, h, w) for n, h, w in (prof["min"], prof["opt"], prof["max"])])
    config.add_optimization_profile(opt)
    config.progress_monitor = _progress_monitor(trt)
    cache_file = None
    if not is_rtx(trt):
        cache_file = engine_dir() / f"timing-{gpu_name(trt)}-trt{trt_version(trt)}.cache"
        cache = config.create_timing_cache(cache_file.read_bytes() if cache_file.is_file() else b"")
        config.set_timing_cache(cache, ignore_mismatch=True)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RtstyleError(f"TensorRT failed to build an engine from {onnx_path} (see its messages above; after "
                           "an OutOfMemory, lower --max or --max-batch)")
    if cache_file is not None:
        write_bytes(cache_file, bytes(config.get_timing_cache().serialize()))
    return bytes(serialized)


# ---------------------------------------------------------------- the backend

class TensorRTBackend:
    name = "tensorrt"

    def __init__(self, net: nn.Module, meta: dict, device: torch.device, precision: str = "fp16",
                 prof: dict | None = None):
        self.trt = import_tensorrt()
        if self.trt is None:
            raise RtstyleError("TensorRT is not installed: pip install tensorrt (datacenter GPUs) or "
                               "pip install tensorrt-rtx-cu13-libs tensorrt-rtx-cu13-bindings (RTX GPUs)")
        if device.type != "cuda" or not torch.cuda.is_available():
            raise RtstyleError("the tensorrt backend needs a CUDA GPU (no CUDA device here)")
        self.net, self.meta, self.precision = net, meta, precision
        self.device = device if device.index is not None else torch.device("cuda", torch.cuda.current_device())
        self.logger = self.trt.Logger(self.trt.Logger.WARNING)
        self._load(prof or profile(meta))

    def _load(self, prof: dict) -> None:
        """Deserialize the cached engine; a file TensorRT rejects is rebuilt once, not crashed on."""
        with torch.cuda.device(self.device):
            runtime = self.trt.Runtime(self.logger)
            for attempt in range(2):
                path = ensure_engine(self.net, self.meta, self.precision, prof, force=attempt > 0, trt=self.trt)
                try:
                    engine = runtime.deserialize_cuda_engine(path.read_bytes())
                except Exception:  # bindings report a rejected engine as None or as an exception, by version
                    engine = None
                if engine is not None:
                    break
                say(f"TensorRT could not load {path}; rebuilding it")
            else:
                raise RtstyleError(f"TensorRT cannot load the engine it just built ({path})")
            self.runtime, self.engine = runtime, engine
            self.context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        mode = self.trt.TensorIOMode.INPUT
        self.input = next(n for n in names if engine.get_tensor_mode(n) == mode)
        self.output = next(n for n in names if engine.get_tensor_mode(n) != mode)
        dtypes = {self.trt.float16: torch.float16, self.trt.float32: torch.float32}
        self.dtype = dtypes[engine.get_tensor_dtype(self.input)]  # the ONNX graph's, as built
        self.out_dtype = dtypes[engine.get_tensor_dtype(self.output)]
        lo, opt, hi = engine.get_tensor_profile_shape(self.input, 0)
        self.profile = {k: [s[0], s[2], s[3]] for k, s in zip(("min", "opt", "max"), (lo, opt, hi))}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.device != self.device:
            raise RtstyleError(f"input is on {x.device}, the engine on {self.device}")
        if not covers(self.profile, tuple(x.shape)):
            # A frame larger than the engine's profile: rebuild with a profile that takes it.
            n, _, h, w = x.shape
            grown = {**self.profile, "max": [max(a, b) for a, b in zip(self.profile["max"], (n, h, w))]}
            grown["min"] = [min(a, b) for a, b in zip(self.profile["min"], (n, h, w))]
            self._load(grown)
        x = x.to(self.dtype).contiguous()
        self.context.set_input_shape(self.input, tuple(x.shape))
        y = torch.empty(tuple(self.context.get_tensor_shape(self.output)), dtype=self.out_dtype, device=self.device)
        self.context.set_tensor_address(self.input, x.data_ptr())
        self.context.set_tensor_address(self.output, y.data_ptr())
        if not self.context.execute_async_v3(torch.cuda.current_stream(self.device).cuda_stream):
            raise RtstyleError("TensorRT failed to run the engine (see the messages above)")
        return y
