"""A TensorRT (or TensorRT-RTX) engine executing on torch CUDA tensors.

The engine is built on first use (``rtstyle.export.ensure_engine``) and cached. Inputs and outputs
are torch tensors whose device pointers are bound directly (no host round trips), and the engine
runs on the current torch CUDA stream, so it is ordered after the preprocessing that made its input
and before whatever consumes its output.
"""
from __future__ import annotations

import torch
from torch import nn

from rtstyle.errors import RtstyleError
from rtstyle.export import say, covers, ensure_engine, import_tensorrt, profile


class TensorRTBackend:
    name = "tensorrt"

    def __init__(self, net: nn.Module, meta: dict, device: torch.device, precision: str = "fp16",
                 prof: dict | None = None):
        self.trt = import_tensorrt()
        if self.trt is None:
            raise RtstyleError("TensorRT is not installed: pip install tensorrt (datacenter GPUs) or "
                               "`make tensorrt-rtx` (RTX GPUs)")
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
