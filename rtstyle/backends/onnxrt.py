"""ONNX Runtime on the CPU, running the model's exported ONNX file, FP32 or INT8 (cached in the engine folder)."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from rtstyle.backends.onnx import cached_onnx
from rtstyle.errors import RtstyleError


def session_options(threads: int | None = None):
    """CPU session settings: all graph optimisations (constant folding, Conv+Relu fusion, the
    blocked NCHWc convolution layout: EXTENDED without it was 1.7x slower in one run), one intra-op pool
    as large as PyTorch's, sequential execution (the nets are a chain: a second, inter-op pool only
    competes for the same cores), and workers that sleep instead of spinning between ops, which
    leaves the cores to the video pipeline's decode and encode threads."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = threads or torch.get_num_threads()
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return opts


class OnnxRuntimeBackend:
    name = "onnxruntime"
    dtype = torch.float32

    def __init__(self, net: nn.Module, meta: dict, device: torch.device | None = None, precision: str = "fp32",
                 threads: int | None = None):
        self.device = torch.device(device or "cpu")
        if self.device.type != "cpu":
            raise RtstyleError("the onnxruntime backend runs on the CPU; on CUDA use --backend tensorrt or compile")
        if precision not in ("fp32", "int8"):
            raise RtstyleError("fp16 needs a CUDA device; use --precision fp32 or int8 on the CPU")
        self.precision = precision
        self.path = cached_onnx(net, meta, precision)
        self.session = ort.InferenceSession(str(self.path), session_options(threads), providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        # from_numpy/numpy share memory: no copies besides ONNX Runtime's own.
        arr = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        return torch.from_numpy(self.session.run(None, {self.input: arr})[0])
