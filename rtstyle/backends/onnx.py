"""ONNX export, cached in the engine folder, and the FP16 conversion TensorRT builds from.

The FP16 file is the FP32 export converted by ``to_fp16``, with instance normalisation kept in FP32
(its statistics over a whole frame can overflow half precision), so that a *strongly typed*
TensorRT build takes its precision from the file's own types (see ``rtstyle.backends.tensorrt``).
"""
from __future__ import annotations

import copy
import json
import logging
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rtstyle.backends.cache import cached_stem, engine_dir, write_bytes
from rtstyle.errors import say
from rtstyle.nets import multiple_of

# ``onnx`` is imported inside the functions that use it: it takes 0.6 s, which every command
# would pay at start-up (backends import this module) while only ONNX and TensorRT runs need it.
INPUT, OUTPUT = "image", "output"
# Ops computed in FP32 inside an FP16 graph: instance-norm statistics (sums of squares over a whole
# frame) can exceed FP16's 65504 range.
KEEP_FP32_OPS = {"InstanceNormalization"}
# Float inputs the ONNX spec requires to stay float32 whatever the data type (Resize's roi and scales).
FP32_OPERANDS = {("Resize", 1), ("Resize", 2)}


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
    """The model's ONNX file in the engine folder (exported on first use); fp16 is derived from fp32."""
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
    fp16 = folder / f"{stem}-fp16.onnx"
    if not _parses(fp16):
        write_bytes(fp16, to_fp16(onnx.load(str(fp32))).SerializeToString())
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
