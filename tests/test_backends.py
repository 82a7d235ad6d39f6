"""The backend interface: choosing (auto), errors, and each backend against eager PyTorch.

CPU-only machines run eager, ONNX Runtime, the auto choice and torch.compile's CPU path; the CUDA
tests (TensorRT FP16 vs FP32, compile with CUDA graphs) skip with the reason.
"""
from __future__ import annotations

import copy
import json

import pytest
import torch

from rtstyle import backends as B
from rtstyle.backends import cache
from rtstyle.backends import onnx as onnx_export
from rtstyle.backends import tensorrt as E
from rtstyle.backends.compiled import CompiledBackend, bucket
from rtstyle.checkpoint import load_model
from rtstyle.errors import RtstyleError

CUDA = torch.cuda.is_available()


def needs_cuda(test):
    """Marked ``cuda`` (``pytest -m cuda`` runs these: the GPU kit does) and skipped without a GPU."""
    return pytest.mark.cuda(pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (none on this machine)")(test))


@pytest.fixture(autouse=True)
def engines(tmp_path_factory, monkeypatch):
    folder = tmp_path_factory.getbasetemp() / "engines"
    monkeypatch.setenv(cache.ENGINE_DIR_ENV, str(folder))
    return folder


@pytest.fixture()
def tiny(tiny_style):
    net, meta = load_model(tiny_style)
    meta.setdefault("name", "tiny")
    return net, meta


def test_unknown_choices_are_one_line_errors(tiny):
    net, meta = tiny
    with pytest.raises(RtstyleError, match="unknown backend"):
        B.load_backend(net, meta, "tvm", "cpu")
    with pytest.raises(RtstyleError, match="unknown precision"):
        B.load_backend(net, meta, "torch", "cpu", "int4")
    for backend in ("torch", "compile"):
        with pytest.raises(RtstyleError, match="int8 runs through ONNX Runtime"):
            B.load_backend(net, meta, backend, "cpu", "int8")
    for backend in ("torch", "onnxruntime", "compile", "auto"):
        with pytest.raises(RtstyleError, match="fp16 needs a CUDA device"):
            B.load_backend(net, meta, backend, "cpu", "fp16")
    if not CUDA:
        with pytest.raises(RtstyleError, match="(CUDA GPU|not installed)"):
            B.load_backend(net, meta, "tensorrt", "cpu")


def test_onnxruntime_backend_matches_eager(tiny):
    net, meta = tiny
    x = torch.rand(2, 3, 36, 52)
    with torch.inference_mode():
        ref = net(x)
    ort = B.load_backend(net, meta, "onnxruntime", "cpu")
    assert (ort.name, ort.device.type, ort.dtype) == ("onnxruntime", "cpu", torch.float32)
    assert (ort(x) - ref).abs().max().item() < 1e-4


def test_auto_on_cpu_measures_once_then_remembers(tiny, engines, capsys):
    net, meta = tiny
    x = torch.rand(1, 3, 32, 32)
    with torch.inference_mode():
        ref = net(x)
    first = B.load_backend(net, meta, "auto", "cpu")
    err = capsys.readouterr().err
    assert f"backend auto: {first.name} (measured now" in err
    ms = json.loads((engines / B.CPU_CHOICE_FILE).read_text())[B._cpu_key(meta)]
    assert set(ms) == {"torch", "onnxruntime"} and first.name == min(ms, key=ms.get)
    assert (first(x) - ref).abs().max().item() < 1e-4

    # The remembered measurement decides from now on, whichever way it went.
    for fast, slow in (("torch", "onnxruntime"), ("onnxruntime", "torch")):
        (engines / B.CPU_CHOICE_FILE).write_text(json.dumps({B._cpu_key(meta): {fast: 1.0, slow: 9.0}}))
        chosen = B.load_backend(net, meta, "auto", "cpu")
        assert chosen.name == fast and f"backend auto: {fast} (faster on this CPU when measured" in capsys.readouterr().err


def test_auto_for_a_few_frames_neither_exports_nor_probes(tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(cache.ENGINE_DIR_ENV, str(tmp_path))
    net, meta = tiny
    chosen = B.load_backend(net, meta, "auto", "cpu", frames=1)
    assert chosen.name == "torch" and "1 frame: an ONNX export and a backend probe" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.onnx")) and not (tmp_path / B.CPU_CHOICE_FILE).exists()

    # ONNX Runtime measured faster but not built for this model: still no export for 3 frames.
    (tmp_path / B.CPU_CHOICE_FILE).write_text(json.dumps({B._cpu_key(meta): {"onnxruntime": 1.0, "torch": 9.0}}))
    assert B.load_backend(net, meta, "auto", "cpu", frames=3).name == "torch"
    assert not list(tmp_path.glob("*.onnx"))

    # Once built (by a video, or `rtstyle export`), the measured faster one is used.
    onnx_export.cached_onnx(net, meta)
    capsys.readouterr()
    assert B.load_backend(net, meta, "auto", "cpu", frames=1).name == "onnxruntime"
    assert "fastest of the built backends when measured" in capsys.readouterr().err
    # Many frames (or unknown): the full choice, as before.
    assert B.load_backend(net, meta, "auto", "cpu", frames=B.QUICK_FRAMES + 1).name == "onnxruntime"


def test_sr_probe_measures_at_the_output_size():
    h, w = B.PROBE_SHAPE
    assert B._probe_input({"arch": {"kind": "sr", "scale": 4}}) == (h // 4, w // 4)
    assert B._probe_input({"arch": {"kind": "style"}}) == (h, w)


def test_auto_falls_back_to_eager_when_onnx_fails(tiny, monkeypatch, capsys):
    import rtstyle.backends.onnxrt as onnxrt

    def broken(*args, **kwargs):
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(onnxrt, "OnnxRuntimeBackend", broken)
    net, meta = tiny
    assert B.load_backend(net, meta, "auto", "cpu").name == "torch"
    assert "ONNX Runtime unavailable for this model: RuntimeError: exporter exploded" in capsys.readouterr().err


@pytest.fixture()
def photos(tmp_path, monkeypatch):
    """A folder of 20 smooth synthetic photos to calibrate INT8 on, named by $RTSTYLE_CALIBRATION."""
    import numpy as np
    from rtstyle.imageio import write_image

    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(20):
        small = torch.from_numpy(rng.random((1, 3, 6, 8), dtype=np.float32))
        img = torch.nn.functional.interpolate(small, size=(48, 64), mode="bicubic").clamp(0, 1)
        write_image(folder / f"{i:02d}.png", (img[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8))
    monkeypatch.setenv(onnx_export.CALIBRATION_ENV, str(folder))
    return folder


def test_int8_quantises_convolutions_only_and_is_cached(tiny, photos, capsys):
    import onnx

    net, meta = tiny
    x = torch.rand(1, 3, 40, 48)
    with torch.inference_mode():
        ref = net(x)
    q = B.load_backend(net, meta, "onnxruntime", "cpu", "int8")
    assert "quantising tiny to int8 on 16 photos" in capsys.readouterr().err
    assert 10 * torch.log10(1 / ((q(x) - ref) ** 2).mean()) > 20
    quality = onnx_export.int8_quality(q.path)
    assert quality["photos"] == onnx_export.CHECK_PHOTOS and quality["psnr_db_vs_fp32"] > 20
    graph = onnx.load(str(q.path)).graph
    made_by = {o: n.op_type for n in graph.node for o in n.output}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert all(made_by.get(n.input[1]) == "DequantizeLinear" for n in convs[:-1])  # int8 weights...
    assert convs[-1].input[1] not in made_by  # ...but the last convolution's are float, as is its output
    norms = [n for n in graph.node if n.op_type == "InstanceNormalization"]
    assert norms and all(i not in made_by for n in norms for i in n.input[1:])  # float scale and bias
    B.load_backend(net, meta, "onnxruntime", "cpu", "int8")
    assert "quantising" not in capsys.readouterr().err  # cached


def test_int8_without_photos_is_a_one_line_error(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv(onnx_export.CALIBRATION_ENV, str(tmp_path))
    monkeypatch.delenv("RTSTYLE_SHARED", raising=False)
    net, meta = copy.deepcopy(tiny[0]), {**tiny[1], "data": str(tmp_path)}
    with torch.no_grad():
        next(net.parameters()).add_(1)  # weights no INT8 file was cached for
    with pytest.raises(RtstyleError, match="int8 needs 20 or more photos to calibrate on"):
        B.load_backend(net, meta, "onnxruntime", "cpu", "int8")


def test_auto_precision_takes_int8_only_when_built_checked_and_faster(tiny, photos, engines, capsys):
    net, meta = tiny
    key = B._cpu_key(meta)
    (engines / B.CPU_CHOICE_FILE).parent.mkdir(parents=True, exist_ok=True)
    (engines / B.CPU_CHOICE_FILE).write_text(json.dumps({key: {"torch": 9.0, "onnxruntime": 5.0,
                                                               "onnxruntime-int8": 2.0}}))
    sidecar = onnx_export.int8_path(net, meta).with_suffix(".json")
    sidecar.unlink(missing_ok=True)
    chosen = B.load_backend(net, meta, "auto", "cpu", "auto")
    assert (chosen.name, chosen.precision) == ("onnxruntime", "fp32")
    assert "int8 not built for this model" in capsys.readouterr().err
    B.load_backend(net, meta, "onnxruntime", "cpu", "int8")  # builds it
    for psnr, expected in ((45.0, "int8"), (20.0, "fp32")):
        sidecar.write_text(json.dumps({"psnr_db_vs_fp32": psnr, "photos": 4}))
        capsys.readouterr()
        chosen = B.load_backend(net, meta, "auto", "cpu", "auto")
        err = capsys.readouterr().err
        assert chosen.precision == expected, err
        assert (f"backend auto: onnxruntime int8 (faster" in err) if expected == "int8" else "int8 left out: 20.0 dB" in err
    assert B.load_backend(net, meta, "auto", "cpu", "fp32").precision == "fp32"  # asked for: no int8


def test_measure_cpu_interleaves_and_reports_each():
    calls = []
    ms = B.measure_cpu({"a": lambda x: calls.append("a"), "b": lambda x: calls.append("b")}, shape=(8, 8), rounds=2)
    assert set(ms) == {"a", "b"} and calls == ["a", "b"] * 4


def test_buckets():
    assert bucket(1, 720, 1280) == (1, 736, 1280)
    assert bucket(3, 1080, 1920) == (4, 1088, 1920)
    assert bucket(4, 32, 33) == (4, 32, 64)


def test_compile_on_cpu_pads_to_buckets_and_crops_back(tiny):
    """One CPU compile (tiny net, one shape): a batch of 3 runs as 4, 28x40 as 32x64, outputs cropped back."""
    net, meta = tiny
    x = torch.rand(3, 3, 28, 40)
    padded = torch.nn.functional.pad(x, (0, 24, 0, 4), mode="reflect")
    with torch.inference_mode():
        ref = net(padded)[..., :28, :40]
    backend = CompiledBackend(net, torch.device("cpu"), "fp32")
    y = backend(x)
    assert y.shape == (3, 3, 28, 40)
    assert (y - ref).abs().max().item() < 1e-4


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return (10 * torch.log10(1 / (a.float() - b.float()).pow(2).mean())).item()


def real_frames(shared, device) -> list[torch.Tensor]:
    """The content images, padded to a multiple of 4 as the pipeline does (one with odd sizes)."""
    from rtstyle.imageio import list_images, read_image, to_tensor

    out = []
    for path in list_images(shared / "data" / "content"):
        x = to_tensor(read_image(path)).to(device)
        h, w = x.shape[-2:]
        out.append(torch.nn.functional.pad(x, (0, -w % 4, 0, -h % 4), mode="reflect"))
    return out


@needs_cuda
@pytest.mark.skipif(E.import_tensorrt() is None, reason="no TensorRT or TensorRT-RTX module installed")
def test_tensorrt_fp16_matches_fp32_on_real_images(shared, tiny):
    net, meta = tiny
    device = torch.device("cuda")
    ref = B.load_backend(net, meta, "torch", device, "fp32")
    trt = B.load_backend(net, meta, "tensorrt", device, "fp16")
    assert trt.dtype == torch.float16
    for x in real_frames(shared, device):
        y = trt(x)
        assert y.shape == x.shape and y.device == x.device
        assert psnr(y, ref(x)) >= 40
    stream = torch.cuda.Stream()
    x = real_frames(shared, device)[0]
    with torch.cuda.stream(stream):  # runs on the caller's stream, ordered after its work
        y = trt(x.repeat(2, 1, 1, 1))
    stream.synchronize()
    assert psnr(y[1:], ref(x)) >= 40


@needs_cuda
def test_compile_fp16_cuda_graphs_match_eager(shared, tiny):
    net, meta = tiny
    device = torch.device("cuda")
    ref = B.load_backend(net, meta, "torch", device, "fp32")
    fast = B.load_backend(copy.deepcopy(net), meta, "compile", device, "fp16")  # eager keeps its own fp32 copy
    x = real_frames(shared, device)[1]
    h, w = x.shape[-2:]
    bn, bh, bw = bucket(1, h, w)

    def expected(x):  # eager fp32 on the same bucket padding, cropped back
        return ref(torch.nn.functional.pad(x, (0, bw - w, 0, bh - h), mode="reflect"))[..., :h, :w]

    first = fast(x)
    second = fast(x.flip(-1))  # a CUDA graph replay must not overwrite the first result
    assert first.shape == x.shape and first.dtype == torch.float16
    assert psnr(first, expected(x)) >= 40 and psnr(second, expected(x.flip(-1))) >= 40


@needs_cuda
def test_auto_on_cuda_prefers_tensorrt_then_compile(tiny, capsys):
    net, meta = tiny
    chosen = B.load_backend(net, meta, "auto", "cuda", "fp16")
    assert chosen.name == ("tensorrt" if E.import_tensorrt() else "compile")
    assert f"backend auto: {chosen.name}" in capsys.readouterr().err


def test_bf16_runs_eager_on_a_copy_close_to_fp32(tiny):
    net, meta = tiny
    x = torch.rand(1, 3, 32, 48)
    with torch.inference_mode():
        ref = net(x)
    low = B.load_backend(net, meta, "auto", "cpu", "bf16")
    assert (low.name, low.precision, low.dtype) == ("torch", "bf16", torch.bfloat16)
    assert next(net.parameters()).dtype == torch.float32  # the caller's net is left as it was
    assert psnr(low(x), ref) > B.BF16_MIN_PSNR
    assert B.bf16_psnr(net, (32, 48)) > B.BF16_MIN_PSNR
    with pytest.raises(RtstyleError, match="bf16 runs through eager PyTorch"):
        B.load_backend(net, meta, "onnxruntime", "cpu", "bf16")


@pytest.mark.parametrize("native, psnr_db, expected", [(True, 50.0, "bf16"), (True, 20.0, "fp32"), (False, 50.0, "fp32")])
def test_auto_precision_takes_bf16_only_where_native_checked_and_faster(tiny, engines, monkeypatch, capsys,
                                                                       native, psnr_db, expected):
    net, meta = tiny
    monkeypatch.setattr(B, "cpu_has_native_bf16", lambda: native)
    monkeypatch.setattr(B, "bf16_psnr", lambda net, shape: psnr_db)
    engines.mkdir(parents=True, exist_ok=True)
    (engines / B.CPU_CHOICE_FILE).write_text(json.dumps({B._cpu_key(meta): {"torch": 9.0, "onnxruntime": 7.0,
                                                                            "torch-bf16": 3.0}}))
    onnx_export.int8_path(net, meta).with_suffix(".json").unlink(missing_ok=True)
    chosen = B.load_backend(net, meta, "auto", "cpu", "auto")
    err = capsys.readouterr().err
    assert chosen.precision == expected, err
    if expected == "bf16":
        assert "backend auto: torch bf16 (faster on this CPU when measured" in err
    else:
        assert chosen.name == "onnxruntime"
        assert ("bf16 left out: 20.0 dB" in err) == native
    assert B.load_backend(net, meta, "auto", "cpu", "fp32").precision == "fp32"  # asked for: no bf16
