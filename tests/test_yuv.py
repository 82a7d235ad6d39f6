"""YUV -> RGB on the device (rtstyle.yuv) against PyAV's own rgb24 conversion, and the pipeline with it."""
from __future__ import annotations

import io

import av
import numpy as np
import pytest
import torch

from rtstyle import yuv
from rtstyle.backends import load_backend
from rtstyle.frames import Options, process
from rtstyle.models import Model
from rtstyle.nets import build_net
from rtstyle.stream import run_video
from rtstyle.synth import make_clip

# (pix_fmt, AVColorSpace, AVColorRange): BT.709 / BT.601 (BT470BG, SMPTE170M) / unspecified,
# limited and full range, 4:2:0 and 4:4:4.
CASES = [("yuv420p", 1, 1), ("yuv420p", 5, 1), ("yuv420p", 6, 1), ("yuv420p", 2, 0), ("yuvj420p", 1, 2),
         ("yuv420p", 5, 2), ("yuv444p", 1, 1), ("yuv422p", 5, 1)]


def encoded(pix_fmt: str, colorspace: int, color_range: int, w: int = 96, h: int = 64) -> io.BytesIO:
    """Three H.264 frames of a gradient over noise, tagged with the matrix and range."""
    rgb = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    rgb[: h // 2] = np.linspace(0, 255, w, dtype=np.uint8)[None, :, None]
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        s.codec_context.colorspace, s.codec_context.color_range = colorspace, color_range
        for i in range(3):
            for p in s.encode(av.VideoFrame.from_ndarray(np.roll(rgb, 7 * i, 1), format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    buf.seek(0)
    return buf


def small_model() -> Model:
    torch.manual_seed(0)
    meta = {"arch": {"kind": "style", "width": 0.25}}
    return Model.wrap(load_backend(build_net(meta["arch"]), meta, "torch", "cpu"), meta)


@pytest.mark.parametrize("pix_fmt,colorspace,color_range", CASES)
def test_matches_pyav_rgb24(pix_fmt, colorspace, color_range):
    with av.open(encoded(pix_fmt, colorspace, color_range)) as c:
        for frame in c.decode(video=0):
            planes = yuv.host_frame(frame, True)
            assert isinstance(planes, yuv.YuvFrame)
            ref = frame.to_ndarray(format="rgb24").astype(int)
            diff = np.abs(yuv.rgb(planes).astype(int) - ref)
            # swscale's fixed-point fast path rounds differently: a few levels at most, ~1 on average
            assert diff.max() <= 4 and diff.mean() < 1.2, (diff.max(), diff.mean())


def test_matrix_and_range_matter():
    """The same planes read as BT.709 and BT.601, or full and limited range, give different colours."""
    y = torch.full((1, 1, 2, 2), 120, dtype=torch.uint8)
    u, v = torch.full((1, 1, 1, 1), 90, dtype=torch.uint8), torch.full((1, 1, 1, 1), 200, dtype=torch.uint8)
    bt709, bt601 = yuv.to_rgb(y, u, v, yuv.MATRICES[1], False), yuv.to_rgb(y, u, v, yuv.BT601, False)
    assert (bt709 - bt601).abs().max() > 0.03
    assert (yuv.to_rgb(y, u, v, yuv.BT601, True) - bt601).abs().max() > 0.03
    assert bt709.shape == (1, 3, 2, 2)


def test_other_formats_convert_on_the_host():
    frame = av.VideoFrame.from_ndarray(np.zeros((8, 8, 3), np.uint8), format="rgb24")
    assert isinstance(yuv.host_frame(frame, True), np.ndarray)
    with av.open(encoded("yuv420p", 1, 1)) as c:
        assert isinstance(yuv.host_frame(next(c.decode(video=0)), False), np.ndarray)


def test_batch_uploads_planes_and_process_takes_it():
    torch.manual_seed(0)
    model = small_model()
    with av.open(encoded("yuv420p", 1, 1)) as c:
        frames = [yuv.host_frame(f, True) for f in c.decode(video=0)]
    batch = yuv.batch(frames)
    assert isinstance(batch, yuv.YuvBatch) and batch.shape == (3, 64, 96, 3)
    on_device = process(model, batch, Options())
    on_host = process(model, np.stack([yuv.rgb(f) for f in frames]), Options())
    assert on_device.shape == on_host.shape == (3, 64, 96, 3)
    # The host path rounds to uint8 before the net, the device path does not: half a level at the input
    x = batch.upload(torch.device("cpu"))
    ref = torch.from_numpy(np.stack([yuv.rgb(f) for f in frames])).permute(0, 3, 1, 2).float() / 255
    assert (x - ref).abs().max() <= 0.5 / 255 + 1e-6
    assert np.abs(on_device.astype(int) - on_host.astype(int)).mean() < 1.0
    mixed = yuv.batch([frames[0], yuv.rgb(frames[1])])  # a mid-stream format change: RGB on the host
    assert isinstance(mixed, np.ndarray) and mixed.shape == (2, 64, 96, 3)


def test_pipeline_with_device_yuv_matches_host_conversion(tmp_path):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = small_model()
    src = make_clip(tmp_path / "in.mp4", frames=6, size=(64, 48), audio=False)
    outs = {}
    for planes in (True, False):
        dst = tmp_path / f"out-{planes}.mp4"
        report = run_video(src, dst, model, Options(), progress=False, device_yuv=planes, crf=0)
        assert report.frames == 6
        with av.open(str(dst)) as c:
            outs[planes] = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]).astype(int)
    assert np.abs(outs[True] - outs[False]).mean() < 2.0


def test_auto_is_on_cuda_only():
    assert yuv.use_device_yuv(torch.device("cuda")) and not yuv.use_device_yuv(torch.device("cpu"))
    assert yuv.use_device_yuv(torch.device("cpu"), True)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")
def test_cuda_conversion_matches_cpu():
    with av.open(encoded("yuv420p", 1, 1, 1920, 1080)) as c:
        frames = [yuv.host_frame(f, True) for f in c.decode(video=0)]
    batch = yuv.batch(frames)
    on_gpu = batch.upload(torch.device("cuda"))
    assert on_gpu.device.type == "cuda" and on_gpu.shape == (3, 3, 1080, 1920)
    assert (on_gpu.cpu() - batch.upload(torch.device("cpu"))).abs().max() < 1e-5
