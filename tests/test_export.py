"""ONNX export (checked, dynamic, matches PyTorch on real images) and TensorRT engine builds and caching.

The engine tests build real engines with TensorRT-RTX, which needs no GPU to build (`make tensorrt-rtx`
installs it); running an engine needs a GPU and is tested in test_backends.py.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F

from conftest import make_model
from rtstyle.backends import cache
from rtstyle.backends import tensorrt as E
from rtstyle.backends.onnx import cached_onnx
from rtstyle.backends.onnxrt import OnnxRuntimeBackend
from rtstyle.checkpoint import load_model
from rtstyle.cli import main
from rtstyle.errors import RtstyleError
from rtstyle.imageio import read_image, to_tensor

TRT = E.import_tensorrt()
needs_trt = pytest.mark.skipif(TRT is None, reason="no TensorRT or TensorRT-RTX module (pip install tensorrt-rtx-cu13-libs tensorrt-rtx-cu13-bindings, or make tensorrt-rtx)")
SMALL = {"opt": "64x64", "max": "128x128"}


@pytest.fixture(autouse=True)
def engines(tmp_path_factory, monkeypatch) -> Path:
    """One engine folder for the session, so each tiny model is exported to ONNX once."""
    folder = tmp_path_factory.getbasetemp() / "engines"
    monkeypatch.setenv(cache.ENGINE_DIR_ENV, str(folder))
    return folder


@pytest.fixture(scope="module")
def tiny(tiny_style):
    net, meta = load_model(tiny_style)
    meta.setdefault("name", "tiny")
    return net, meta


def pad4(x: torch.Tensor) -> torch.Tensor:
    """Reflect-pad to a multiple of 4, as the pipeline does before the net."""
    h, w = x.shape[-2:]
    return F.pad(x, (0, -w % 4, 0, -h % 4), mode="reflect")


def test_export_cli_writes_one_checked_file_with_dynamic_shapes(tiny_style, tmp_path, capsys):
    out = tmp_path / "tiny.onnx"
    assert main(["export", "--style", str(tiny_style), "--format", "onnx", "-o", str(out)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.onnx"]  # self-contained: no .onnx.data
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    dims = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in (*model.graph.input, *model.graph.output)]
    for n, c, h, w in dims:
        assert c == 3 and all(isinstance(d, str) for d in (n, h, w)), dims
    # An existing file is not replaced without --overwrite, and the error is one line.
    assert main(["export", "--style", str(tiny_style), "-o", str(out)]) == 2
    assert "exists" in capsys.readouterr().err


def test_onnxruntime_matches_pytorch_on_real_images(shared, tiny):
    net, meta = tiny
    ort = OnnxRuntimeBackend(net, meta)
    content = shared / "data" / "content"
    images = [read_image(content / "chicago.jpg"),  # 474x712: height not a multiple of 4
              cv2.resize(read_image(content / "amber.jpg"), (135, 135), interpolation=cv2.INTER_AREA),
              cv2.resize(read_image(content / "hoovertowernight.jpg"), (190, 101), interpolation=cv2.INTER_AREA)]
    batch = torch.cat([pad4(to_tensor(images[1])), pad4(to_tensor(images[1][::-1].copy()))])
    for x in [pad4(to_tensor(img)) for img in images] + [batch]:
        with torch.inference_mode():
            ref = net(x)
        y = ort(x)
        assert y.shape == ref.shape
        assert (y - ref).abs().max().item() < 1e-3, x.shape


def test_fp16_onnx_keeps_instance_norm_in_fp32_and_stays_close(shared, tiny):
    import onnxruntime

    net, meta = tiny
    model = onnx.load(str(cached_onnx(net, meta, "fp16")))
    graph = model.graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    producers = {o: n for n in graph.node for o in n.output}
    norms = [n for n in graph.node if n.op_type == "InstanceNormalization"]
    assert norms and all(producers[n.input[0]].op_type == "Cast" for n in norms)
    # Float32 weights remain only where FP32 is meant: instance-norm affine parameters, Resize scales.
    fp32 = {i.name for i in graph.initializer if i.data_type == onnx.TensorProto.FLOAT}
    users = {(n.op_type, i) for n in graph.node for i, name in enumerate(n.input) if name in fp32}
    assert users == {("InstanceNormalization", 1), ("InstanceNormalization", 2), ("Resize", 2)}, users
    x = to_tensor(cv2.resize(read_image(shared / "data" / "content" / "chicago.jpg"), (356, 236))).numpy()
    run = lambda path, a: onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": a})[0]  # noqa: E731
    a = run(cached_onnx(net, meta), x)
    b = run(cached_onnx(net, meta, "fp16"), x.astype(np.float16)).astype(np.float32)
    psnr = 10 * np.log10(1 / np.mean((a - b) ** 2))
    assert psnr >= 40, psnr


def test_profile_parsing():
    meta = {"arch": {"kind": "style"}}
    assert E.profile(meta, {"opt": "99x130", "max": "200x300"}, 2) == {"min": [1, 32, 32], "opt": [1, 100, 132], "max": [2, 200, 300]}
    sr = E.profile({"arch": {"kind": "sr", "scale": 4}})
    assert sr["max"][1:] == [272, 480]
    for bad in ({"max": "12 by 3"}, {"min": "64x64", "max": "32x32"}, {"min": "4x4"}):
        with pytest.raises(RtstyleError):
            E.profile(meta, bad)
    assert E.covers(sr, (1, 3, 100, 100)) and not E.covers(sr, (5, 3, 100, 100))


@needs_trt
def test_engine_build_cache_and_rebuilds(tiny, tmp_path, capsys):
    net, meta = tiny
    prof = E.profile(meta, SMALL, 2)
    path = E.ensure_engine(net, meta, "fp16", prof)
    assert path.name == f"tiny-{cache.model_hash(net, meta)}-fp16-{E.gpu_name(TRT)}-trt{E.trt_version(TRT)}.engine"
    side = json.loads(path.with_suffix(".json").read_text())
    assert side["precision"] == "fp16" and side["profile"] == prof and side["tensorrt"] == E.trt_version(TRT)
    assert path.stat().st_size > 10_000
    assert "building" in capsys.readouterr().err

    assert E.ensure_engine(net, meta, "fp16", prof) == path  # cached: no build
    assert "building" not in capsys.readouterr().err

    def rebuilt(why: str) -> None:
        assert E.ensure_engine(net, meta, "fp16", prof) == path
        err = capsys.readouterr().err
        assert "building" in err and why in err, err
        assert E.engine_is_valid(path, {"precision": "fp16"})[0]

    side["tensorrt"] = "0.0.1"  # built by another TensorRT version
    path.with_suffix(".json").write_text(json.dumps(side))
    rebuilt("tensorrt")
    side = json.loads(path.with_suffix(".json").read_text())
    side["gpu"] = "another-gpu"
    path.with_suffix(".json").write_text(json.dumps(side))
    rebuilt("gpu")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # corrupt the engine itself
    path.write_bytes(bytes(data))
    rebuilt("checksum")
    path.write_bytes(b"")  # truncated
    rebuilt("checksum")
    E.ensure_engine(net, meta, "fp16", E.profile(meta, {"opt": "64x64", "max": "160x160"}, 2))
    assert "does not cover" in capsys.readouterr().err  # a larger shape than the engine takes


@needs_trt
def test_engine_follows_the_model_weights(tmp_path, tiny):
    net, meta = tiny
    other, other_meta = load_model(make_model(tmp_path / "tiny.safetensors", meta["arch"], seed=7))
    other_meta.setdefault("name", "tiny")
    prof = E.profile(meta, SMALL, 1)
    a = E.ensure_engine(net, meta, "fp16", prof)
    b = E.ensure_engine(other, other_meta, "fp16", prof)
    assert a != b and a.is_file() and b.is_file()  # retrained weights never reuse a stale engine


@needs_trt
def test_export_cli_builds_tensorrt_engine(tiny_style, engines, capsys):
    assert main(["export", "--style", str(tiny_style), "--format", "tensorrt", "--precision", "fp32",
                 "--opt", "64x64", "--max", "96x96", "--max-batch", "1"]) == 0
    printed = Path(capsys.readouterr().out.strip())
    assert printed.parent == engines and printed.name.endswith(".engine") and "-fp32-" in printed.name
    assert json.loads(printed.with_suffix(".json").read_text())["profile"]["max"] == [1, 96, 96]


def test_tensorrt_missing_is_one_line_error(tiny, monkeypatch):
    net, meta = tiny
    monkeypatch.setattr(E, "import_tensorrt", lambda: None)
    with pytest.raises(RtstyleError, match="TensorRT is not installed"):
        E.ensure_engine(net, meta)
