"""ONNX export and TensorRT engine builds, cached in the engine folder.

Every cached file is keyed by a hash of the model's weights and architecture, so a retrained model
never runs through a stale export. Engines are named
``<style>-<model hash>-<precision>-<gpu>-trt<version>.engine`` and carry a JSON sidecar; an engine
whose sidecar does not match what is asked for (model, GPU, TensorRT version, precision, shapes)
or whose bytes do not match the sidecar's checksum is rebuilt, never trusted.

TensorRT comes in two Python modules with the same API: ``tensorrt`` (datacenter GPUs such as the
H100) and ``tensorrt_rtx`` (GeForce/RTX GPUs; it can build engines ahead of time without any GPU).
Both builds here use a *strongly typed* network: the precision is the ONNX file's own types. FP16
is an ONNX file converted by ``to_fp16``, with instance normalisation kept in FP32 (its statistics
over a whole frame can overflow half precision). TensorRT-RTX has no FP16 builder flag, TensorRT
10.12 deprecated it and TensorRT 11 removed it, so this one route works with all of them.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import re
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from torch import nn

from rtstyle.checkpoint import write_atomic
from rtstyle.errors import RtstyleError
from rtstyle.nets import multiple_of

ENGINE_DIR_ENV = "RTSTYLE_ENGINE_DIR"
FORMATS = ("onnx", "tensorrt")
INPUT, OUTPUT = "image", "output"
# Ops computed in FP32 inside an FP16 graph: instance-norm statistics (sums of squares over a whole
# frame) can exceed FP16's 65504 range.
KEEP_FP32_OPS = {"InstanceNormalization"}
# Float inputs the ONNX spec requires to stay float32 whatever the data type (Resize's roi and scales).
FP32_OPERANDS = {("Resize", 1), ("Resize", 2)}
WORKSPACE_MB = 4096  # a limit, not an allocation; batch 4 at 1088x1920 needs more than 2 GiB


def engine_dir() -> Path:
    """Where exported ONNX files, engines and CPU measurements are cached.

    $RTSTYLE_ENGINE_DIR if set; else the checkout's ``engines/`` folder when rtstyle runs from a
    source tree (it is git-ignored); else, for an installed package, ~/.cache/rtstyle/engines.
    """
    if os.environ.get(ENGINE_DIR_ENV):
        return Path(os.environ[ENGINE_DIR_ENV])
    checkout = Path(__file__).resolve().parents[1] / "engines"
    if (checkout / "README.md").is_file() and os.access(checkout, os.W_OK):
        return checkout
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rtstyle" / "engines"


def model_hash(net: nn.Module, meta: dict) -> str:
    """12 hex digits identifying the weights and architecture (not the file they came from)."""
    h = hashlib.sha256(json.dumps(meta["arch"], sort_keys=True).encode())
    for name, t in sorted(net.state_dict().items()):
        t = t.detach().to("cpu", torch.float32 if t.is_floating_point() else t.dtype).contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:12]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-") or "model"


def _write_bytes(dest: Path, data: bytes) -> None:
    write_atomic(dest, lambda tmp: tmp.write_bytes(data))


def say(msg: str) -> None:
    print(f"rtstyle: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- ONNX

def export_onnx(net: nn.Module, meta: dict, dest: Path) -> Path:
    """Write ``net`` as one self-contained ONNX file with dynamic batch, height and width.

    The dynamo exporter (torch.export + onnxscript) is the maintained one: it writes a clean graph
    (native InstanceNormalization, reflect Pad, Resize) where the legacy TorchScript exporter is
    deprecated. ``external_data=False`` keeps the weights inside the file.
    """
    import onnx

    multiple = multiple_of(meta["arch"])
    net = copy.deepcopy(net).float().eval().cpu()
    example = torch.rand(1, 3, 16 * multiple, 16 * multiple)
    batch = torch.export.Dim("batch", min=1, max=256)
    height = torch.export.Dim("height", min=2, max=4096)
    width = torch.export.Dim("width", min=2, max=4096)
    shapes = ({0: batch, 2: height * multiple, 3: width * multiple},) if multiple > 1 else ({0: batch, 2: height, 3: width},)
    quiet = logging.getLogger("torch.onnx")  # "torchvision is not installed" notices
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(net, (example,), None, dynamo=True, external_data=False, input_names=[INPUT],
                                        output_names=[OUTPUT], dynamic_shapes=shapes, verbose=False)
    finally:
        quiet.setLevel(level)
    model = program.model_proto
    model.doc_string = f"rtstyle {meta.get('name', 'model')} {json.dumps(meta['arch'], sort_keys=True)}"
    onnx.checker.check_model(model, full_check=True)
    _write_bytes(dest, model.SerializeToString())
    return dest


def cached_onnx(net: nn.Module, meta: dict, precision: str = "fp32") -> Path:
    """The model's ONNX file in the engine folder (exported on first use); fp16 is derived from fp32."""
    import onnx

    folder = engine_dir()
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{_slug(meta.get('name', 'model'))}-{model_hash(net, meta)}"
    fp32 = folder / f"{stem}-fp32.onnx"
    if not _parses(fp32):
        say(f"exporting {meta.get('name', 'the model')} to ONNX (once; cached as {fp32})")
        export_onnx(net, meta, fp32)
    if precision == "fp32":
        return fp32
    fp16 = folder / f"{stem}-fp16.onnx"
    if not _parses(fp16):
        _write_bytes(fp16, to_fp16(onnx.load(str(fp32))).SerializeToString())
    return fp16


def _parses(path: Path) -> bool:
    """Whether a cached ONNX file exists and holds a graph: a damaged one (truncated, emptied) is
    exported again instead of failing every run. Parsing costs milliseconds."""
    import onnx

    try:
        return len(onnx.load(str(path)).graph.node) > 0
    except Exception:  # a missing file, protobuf's DecodeError, ...
        return False


def to_fp16(model):
    """An FP16 copy of an FP32 ONNX model (FP16 input and output), with ``KEEP_FP32_OPS`` computed in FP32.

    Written for strongly typed TensorRT builds: every tensor's type is explicit, casts sit only
    around the FP32 islands, and the result passes ONNX's strict type inference.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = copy.deepcopy(model)
    graph = model.graph
    uses = defaultdict(list)
    for node in graph.node:
        for i, name in enumerate(node.input):
            uses[name].append((node.op_type, i))

    def stays_fp32(name: str) -> bool:
        return bool(uses[name]) and all(op in KEEP_FP32_OPS or (op, i) in FP32_OPERANDS for op, i in uses[name])

    def half(t):
        return numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), t.name)

    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT and not stays_fp32(init.name):
            init.CopyFrom(half(init))
    nodes = []
    for node in graph.node:
        if node.op_type == "Constant" and not stays_fp32(node.output[0]):
            for attr in node.attribute:
                if attr.name == "value" and attr.t.data_type == TensorProto.FLOAT:
                    attr.t.CopyFrom(half(attr.t))
        if node.op_type == "Cast":
            for attr in node.attribute:
                if attr.name == "to" and attr.i == TensorProto.FLOAT:
                    attr.i = TensorProto.FLOAT16
        if node.op_type in KEEP_FP32_OPS:
            x, y = node.input[0], node.output[0]
            nodes.append(helper.make_node("Cast", [x], [f"{x}__fp32_{len(nodes)}"], to=TensorProto.FLOAT))
            node.input[0], node.output[0] = nodes[-1].output[0], f"{y}__fp32"
            nodes += [node, helper.make_node("Cast", [node.output[0]], [y], to=TensorProto.FLOAT16)]
        else:
            nodes.append(node)
    graph.ClearField("node")
    graph.node.extend(nodes)
    for value in [*graph.input, *graph.output]:
        if value.type.tensor_type.elem_type == TensorProto.FLOAT:
            value.type.tensor_type.elem_type = TensorProto.FLOAT16
    graph.ClearField("value_info")
    model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    onnx.checker.check_model(model, full_check=True)
    return model


def export(style: str, fmt: str = "onnx", output: str | None = None, precision: str | None = None,
           shapes: dict | None = None, max_batch: int = 4, overwrite: bool = False) -> Path:
    """``rtstyle export``: an ONNX file (fp32 unless asked), or a TensorRT engine (fp16 unless asked)
    into the engine folder. ``style`` is a model name or file, style or SR."""
    from rtstyle.checkpoint import load_model
    from rtstyle.models import resolve
    from rtstyle.outputs import check_output

    if fmt not in FORMATS:
        raise RtstyleError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    precision = precision or ("fp32" if fmt == "onnx" else "fp16")
    if precision not in ("fp32", "fp16"):
        raise RtstyleError(f"unknown precision {precision!r}; choose from fp32, fp16")
    path = resolve(style)
    net, meta = load_model(path)
    meta.setdefault("name", path.stem)
    if fmt == "onnx":
        dest = check_output([path], Path(output or f"{meta['name']}.onnx"), overwrite)
        _write_bytes(dest, cached_onnx(net, meta, precision).read_bytes())
        return dest
    if output:
        raise RtstyleError("a TensorRT engine is written to the engine folder; set RTSTYLE_ENGINE_DIR instead of -o")
    return ensure_engine(net, meta, precision, profile(meta, shapes, max_batch), force=overwrite)


# ---------------------------------------------------------------- TensorRT

def import_tensorrt() -> ModuleType | None:
    """``tensorrt`` if installed, else TensorRT-RTX (``tensorrt_rtx``, or its standalone-wheel name)."""
    import importlib

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
        return _slug(torch.cuda.get_device_name())
    if is_rtx(trt):
        return "portable"
    raise RtstyleError("building a TensorRT engine needs a CUDA GPU (TensorRT-RTX can build one without: "
                       "make tensorrt-rtx)")


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
    name = f"{_slug(meta.get('name', 'model'))}-{model_hash(net, meta)}-{precision}-{gpu_name(trt)}-trt{trt_version(trt)}"
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
                           "`make tensorrt-rtx` (RTX GPUs)")
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
    _write_bytes(path, data)
    info = {**expected, "style": meta.get("name"), "arch": meta["arch"], "profile": prof,
            "sha256": hashlib.sha256(data).hexdigest(), "build_seconds": round(time.perf_counter() - start, 1),
            "built": time.strftime("%Y-%m-%dT%H:%M:%S")}
    _write_bytes(_sidecar(path), json.dumps(info, indent=1).encode())
    say(f"engine built in {info['build_seconds']} s ({len(data) / 2**20:.1f} MiB)")
    return path


def _progress_monitor(trt: ModuleType):
    """A TensorRT build progress monitor: one tqdm bar for the top-level build phases."""
    from tqdm import tqdm

    class Monitor(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)
            self.bars = {}

        def phase_start(self, phase_name, parent_phase, num_steps):
            if parent_phase is None:
                self.bars[phase_name] = tqdm(total=num_steps, desc=phase_name, leave=False, file=sys.stderr)

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
        _write_bytes(cache_file, bytes(config.get_timing_cache().serialize()))
    return bytes(serialized)
