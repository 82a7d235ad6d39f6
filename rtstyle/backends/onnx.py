"""ONNX export, cached in the engine folder; the FP16 conversion TensorRT builds from; the INT8
quantisation ONNX Runtime runs on CPUs.

The FP16 file is the FP32 export converted by ``to_fp16``, with instance normalisation kept in FP32
(its statistics over a whole frame can overflow half precision), so that a *strongly typed*
TensorRT build takes its precision from the file's own types (see ``rtstyle.backends.tensorrt``).

The INT8 file (``to_int8``) is ONNX Runtime's static QDQ quantisation of the FP32 export: int8
weights per output channel, uint8 activations (the u8s8 pairing x86's VNNI instructions take)
calibrated on photos, and only the convolutions quantised. Instance normalisation, the residual
additions and the last convolution with the output's tanh stay in float: the output is what the
user sees, and normalisation statistics are what int8 rounding would hurt most. Its PSNR against
the FP32 file on held-out photos is measured when it is built and kept beside it.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import tempfile
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rtstyle.backends.cache import cached_stem, engine_dir, write_bytes
from rtstyle.errors import RtstyleError, say
from rtstyle.imageio import list_images, read_image
from rtstyle.nets import multiple_of

# ``onnx`` is imported inside the functions that use it: it takes 0.6 s, which every command
# would pay at start-up (backends import this module) while only ONNX and TensorRT runs need it.
INPUT, OUTPUT = "image", "output"
# Ops computed in FP32 inside an FP16 graph: instance-norm statistics (sums of squares over a whole
# frame) can exceed FP16's 65504 range.
KEEP_FP32_OPS = {"InstanceNormalization"}
# Float inputs the ONNX spec requires to stay float32 whatever the data type (Resize's roi and scales).
FP32_OPERANDS = {("Resize", 1), ("Resize", 2)}
CALIBRATION_ENV = "RTSTYLE_CALIBRATION"
CALIBRATION_PHOTOS, CHECK_PHOTOS, CALIBRATION_SIDE = 16, 4, 256
INT8_MIN_PSNR = 30.0  # dB against FP32 on the held-out photos: below it ``auto`` does not pick INT8


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
    write_bytes(dest, model.SerializeToString())
    return dest


def cached_onnx(net: nn.Module, meta: dict, precision: str = "fp32") -> Path:
    """The model's ONNX file in the engine folder (exported on first use); fp16 and int8 are derived
    from fp32 (int8 calibrated on ``calibration_photos``, its quality in ``int8_quality``)."""
    import onnx

    folder = engine_dir()
    folder.mkdir(parents=True, exist_ok=True)
    stem = cached_stem(net, meta)
    fp32 = folder / f"{stem}-fp32.onnx"
    if not _parses(fp32):
        say(f"exporting {meta.get('name', 'the model')} to ONNX (once; cached as {fp32})")
        export_onnx(net, meta, fp32)
    if precision == "fp32":
        return fp32
    if precision == "int8":
        int8 = int8_path(net, meta)
        if not _parses(int8) or int8_quality(int8) is None:
            photos = calibration_photos(meta)
            say(f"quantising {meta.get('name', 'the model')} to int8 on {len(photos) - CHECK_PHOTOS} photos "
                f"from {photos[0].parent} (once; cached as {int8})")
            to_int8(fp32, int8, photos)
        return int8
    fp16 = folder / f"{stem}-fp16.onnx"
    if not _parses(fp16):
        write_bytes(fp16, to_fp16(onnx.load(str(fp32))).SerializeToString())
    return fp16


def _parses(path: Path) -> bool:
    """Whether a cached ONNX file exists and holds a graph: a damaged one (truncated, emptied) is
    exported again instead of failing every run. Parsing costs milliseconds."""
    if not path.is_file():
        return False  # without importing onnx (0.6 s)
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


def calibration_photos(meta: dict) -> list[Path]:
    """Photos to calibrate INT8 activations on, and then to check it against: from $RTSTYLE_CALIBRATION,
    else the folder the model was trained on (its card's ``data``), else $RTSTYLE_SHARED/data/train;
    evenly spread over the folder, ``CHECK_PHOTOS`` of them last (held out from calibration)."""
    shared = os.environ.get("RTSTYLE_SHARED")
    for folder in (os.environ.get(CALIBRATION_ENV), meta.get("data"), shared and Path(shared) / "data" / "train"):
        if folder and Path(folder).is_dir():
            files = list_images(folder)
            n = CALIBRATION_PHOTOS + CHECK_PHOTOS
            if len(files) >= n:
                return [files[i * len(files) // n] for i in range(n)]
    raise RtstyleError(f"int8 needs {CALIBRATION_PHOTOS + CHECK_PHOTOS} or more photos to calibrate on: "
                       f"set {CALIBRATION_ENV} to a folder of photos")


def _photo(path: Path, side: int = CALIBRATION_SIDE) -> np.ndarray:
    """A photo's centre square, resized to ``side``, as a 1x3xHxW float array in [0, 1]."""
    x = torch.from_numpy(read_image(path)).permute(2, 0, 1)[None].float().div_(255)
    h, w = x.shape[-2:]
    s = min(h, w)
    x = x[..., (h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    return torch.nn.functional.interpolate(x, size=(side, side), mode="bilinear", antialias=True).numpy()


def to_int8(fp32: Path, dest: Path, photos: list[Path]) -> Path:
    """Quantise the FP32 file (see the module's docstring) on ``photos[:-CHECK_PHOTOS]``, write it to
    ``dest`` and its PSNR against FP32 on the last ``CHECK_PHOTOS`` to ``dest``'s JSON sidecar."""
    import onnx
    import onnxruntime as ort
    from onnxruntime import quantization as q

    model = onnx.load(str(fp32))
    convs = [n.name for n in model.graph.node if n.op_type == "Conv"]
    names = [n.name for n in model.graph.node]
    float_tail = names[names.index(convs[-1]):]  # the last convolution and the output after it
    batches = iter([{INPUT: _photo(p)} for p in photos[:-CHECK_PHOTOS]])

    class Photos(q.CalibrationDataReader):
        def get_next(self):
            return next(batches, None)

    logging.disable(logging.WARNING)  # "consider pre-processing": measured no faster with it
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "int8.onnx"
            q.quantize_static(str(fp32), out, Photos(), quant_format=q.QuantFormat.QDQ, op_types_to_quantize=["Conv"],
                              nodes_to_exclude=float_tail, per_channel=True, activation_type=q.QuantType.QUInt8,
                              weight_type=q.QuantType.QInt8, calibrate_method=q.CalibrationMethod.MinMax)
            data = out.read_bytes()
    finally:
        logging.disable(logging.NOTSET)
    ref, quant = (ort.InferenceSession(b, providers=["CPUExecutionProvider"]) for b in (str(fp32), data))
    psnrs = []
    for x in (_photo(p) for p in photos[-CHECK_PHOTOS:]):
        mse = float(np.mean((ref.run(None, {INPUT: x})[0] - quant.run(None, {INPUT: x})[0]) ** 2))
        psnrs.append(10 * np.log10(1 / max(mse, 1e-12)))
    psnr = round(float(np.mean(psnrs)), 2)
    write_bytes(dest, data)
    report = {"psnr_db_vs_fp32": psnr, "photos": len(psnrs), "calibration": str(photos[0].parent)}
    write_bytes(dest.with_suffix(".json"), json.dumps(report, indent=1).encode())
    return dest


def is_built(net: nn.Module, meta: dict) -> bool:
    """Whether the model's FP32 ONNX file is cached already (no export needed)."""
    return _parses(engine_dir() / f"{cached_stem(net, meta)}-fp32.onnx")


def int8_path(net: nn.Module, meta: dict) -> Path:
    """Where the model's INT8 file is cached (whether built or not)."""
    return engine_dir() / f"{cached_stem(net, meta)}-int8.onnx"


def int8_quality(path: Path) -> dict | None:
    """The INT8 file's measured quality (``psnr_db_vs_fp32``...), None if it was never measured."""
    try:
        report = json.loads(path.with_suffix(".json").read_text())
        return report if isinstance(report.get("psnr_db_vs_fp32"), (int, float)) else None
    except (OSError, ValueError, AttributeError):
        return None
