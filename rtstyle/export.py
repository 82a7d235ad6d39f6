"""``rtstyle export``: a model as an ONNX file, or as a TensorRT engine in the engine folder.

The exports themselves live beside the backends that run them (``rtstyle.backends.onnx``,
``rtstyle.backends.tensorrt``), cached in the engine folder (``rtstyle.backends.cache``).
"""
from __future__ import annotations

from pathlib import Path

from rtstyle.backends.onnx import cached_onnx
from rtstyle.backends.tensorrt import ensure_engine, profile
from rtstyle.errors import RtstyleError
from rtstyle.models import open_model
from rtstyle.outputs import check_output, write_atomic

FORMATS = ("onnx", "tensorrt")


def export(style: str, fmt: str = "onnx", output: str | None = None, precision: str | None = None,
           shapes: dict | None = None, max_batch: int = 4, overwrite: bool = False) -> Path:
    """``rtstyle export``: an ONNX file (fp32 unless asked), or a TensorRT engine (fp16 unless asked)
    into the engine folder. ``style`` is a model name or file, style or SR."""
    if fmt not in FORMATS:
        raise RtstyleError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    precision = precision or ("fp32" if fmt == "onnx" else "fp16")
    if precision not in ("fp32", "fp16", "int8") or (precision == "int8" and fmt != "onnx"):
        raise RtstyleError(f"unknown precision {precision!r} for {fmt}; choose from fp32, fp16"
                           + (", int8" if fmt == "onnx" else ""))
    model = open_model(style, kind=None, backend=None)
    if fmt == "onnx":
        dest = check_output([model.path], Path(output or f"{model.name}.onnx"), overwrite)
        data = cached_onnx(model.net, model.meta, precision).read_bytes()
        write_atomic(dest, lambda tmp: tmp.write_bytes(data), overwrite)
        return dest
    if output:
        raise RtstyleError("a TensorRT engine is written to the engine folder; set RTSTYLE_ENGINE_DIR instead of -o")
    return ensure_engine(model.net, model.meta, precision, profile(model.meta, shapes, max_batch), force=overwrite)
