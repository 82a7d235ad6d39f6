import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rtstyle.backends import load_backend
from rtstyle.errors import RtstyleError
from rtstyle.frames import FLAT_CONTRAST, Options, fade_flat, output_shape, parse_size, preserve_color, process
from rtstyle.models import Model, load


class Recorder:
    """A stand-in net: records its input shapes; style = invert, SR = nearest upsampling."""

    name, device, dtype = "fake", torch.device("cpu"), torch.float32

    def __init__(self, scale: int = 1):
        self.scale, self.shapes = scale, []

    def __call__(self, x):
        self.shapes.append(tuple(x.shape))
        return 1 - x if self.scale == 1 else F.interpolate(x, scale_factor=self.scale, mode="nearest")


STYLE = {"arch": {"kind": "style"}}
SR4 = {"arch": {"kind": "sr", "scale": 4}}


def frames(n=2, h=37, w=51, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_any_size_is_padded_to_the_multiple_and_cropped_back():
    net = Recorder()
    x = frames()
    y = process(Model.wrap(net, STYLE), x)
    assert net.shapes == [(2, 3, 40, 52)]          # reflect-padded to multiples of 4
    assert y.shape == x.shape and y.dtype == np.uint8
    np.testing.assert_array_equal(y, 255 - x)      # crop back exactly: the padding never leaks in


def test_single_frame_keeps_its_rank():
    x = frames(1)[0]
    assert process(Model.wrap(Recorder(), STYLE), x).shape == x.shape


def test_max_side_and_size_run_the_net_smaller_and_scale_back():
    net = Recorder()
    y = process(Model.wrap(net, STYLE), frames(1, 120, 200), Options(max_side=50))
    assert net.shapes == [(1, 3, 32, 52)] and y.shape == (1, 120, 200, 3)  # 30x50 padded to 32x52
    net = Recorder()
    y = process(Model.wrap(net, STYLE), frames(1, 120, 200), Options(size=(64, 48)))
    assert net.shapes == [(1, 3, 48, 64)] and y.shape == (1, 120, 200, 3)
    net = Recorder()
    process(Model.wrap(net, STYLE), frames(1, 40, 60), Options(max_side=100))   # never upscales
    assert net.shapes == [(1, 3, 40, 60)]


def test_strength_blends_with_the_original():
    x = frames()
    np.testing.assert_array_equal(process(Model.wrap(Recorder(), STYLE), x, Options(strength=0.0)), x)
    half = process(Model.wrap(Recorder(), STYLE), x, Options(strength=0.5)).astype(int)
    assert np.abs(half - 127.5).max() <= 1  # halfway between x and 255 - x


def test_preserve_color_keeps_chroma_and_takes_luminance():
    rng = torch.Generator().manual_seed(0)
    stylized, original = torch.rand(1, 3, 8, 8, generator=rng) * 0.5 + 0.25, torch.rand(1, 3, 8, 8, generator=rng) * 0.5 + 0.25
    out = preserve_color(stylized, original)
    m = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
    ycc = lambda t: torch.einsum("ij,njhw->nihw", m, t)  # noqa: E731
    torch.testing.assert_close(ycc(out)[:, 0], ycc(stylized)[:, 0], atol=1e-5, rtol=0)
    torch.testing.assert_close(ycc(out)[:, 1:], ycc(original)[:, 1:], atol=1e-5, rtol=0)


def test_side_by_side_is_original_then_processed():
    x = frames()
    y = process(Model.wrap(Recorder(), STYLE), x, Options(side_by_side=True))
    assert y.shape == (2, 37, 102, 3) == (2, *output_shape(Model.wrap(None, STYLE), 37, 51, Options(side_by_side=True)), 3)
    np.testing.assert_array_equal(y[:, :, :51], x)
    np.testing.assert_array_equal(y[:, :, 51:], 255 - x)


def test_sr_output_is_scaled():
    y = process(Model.wrap(Recorder(4), SR4), frames(1, 10, 13))
    assert y.shape == (1, 40, 52, 3)


def test_sr_tiles_are_seamless(tiny_sr):
    net, meta = load(str(tiny_sr), "sr")
    backend = load_backend(net, meta, backend="torch", device="cpu")
    x = frames(1, 30, 45)
    whole = process(Model.wrap(backend, meta), x)
    tiled = process(Model.wrap(backend, meta), x, Options(tile=16, tile_overlap=16))
    assert tiled.shape == whole.shape == (1, 120, 180, 3)
    assert np.abs(whole.astype(int) - tiled).max() <= 1  # identical up to float rounding


def test_tiles_bound_the_net_input():
    net = Recorder(4)
    process(Model.wrap(net, SR4), frames(1, 40, 40), Options(tile=16, tile_overlap=4))
    assert max(s[-1] for s in net.shapes) <= 16 + 2 * 4 and len(net.shapes) == 9


def test_style_fades_in_with_the_contrast_of_a_fade_from_black():
    """A style net's output on a frame with a luma deviation of s levels is lerp(frame, output, g)
    with g = (s - lo) / (hi - lo) clipped to [0, 1], per frame of the batch; SR nets are untouched."""
    lo, hi = FLAT_CONTRAST
    # gray (its luma is each channel) in 4x4 blocks: the every-16th-pixel deviation is exact
    photo = np.kron(frames(1, 8, 8)[0, ..., 0], np.ones((4, 4)))[..., None].repeat(3, -1).astype(np.float32)
    photo = (photo - photo.mean()) / photo.std()
    batch = np.stack([np.clip(100 + photo * s, 0, 255) for s in (0.0, lo, (lo + hi) / 2, hi, 40.0)]).round()
    batch = batch.astype(np.uint8)
    y = process(Model.wrap(Recorder(), STYLE), batch).astype(np.float32)
    x = batch.astype(np.float32)
    luma = x @ np.float32([0.299, 0.587, 0.114])
    g = np.clip((luma.reshape(5, -1).std(1) - lo) / (hi - lo), 0, 1)
    assert g[0] == 0 and 0.3 < g[2] < 0.7 and g[3] > 0.95 and g[4] == 1
    expected = x + g[:, None, None, None] * ((255 - x) - x)
    np.testing.assert_allclose(y, expected, atol=1.01)
    sr = process(Model.wrap(Recorder(4), SR4), batch[:1])
    assert sr.std() == 0  # a flat frame upscaled as it is, not faded


def test_fade_flat_leaves_normal_frames_alone():
    x, y = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    assert fade_flat(x, y) is y


def test_real_style_net_on_odd_frames(tiny_style):
    net, meta = load(str(tiny_style), "style")
    backend = load_backend(net, meta, backend="torch", device="cpu")
    y = process(Model.wrap(backend, meta), frames(2, 29, 35), Options(preserve_color=True, strength=0.7))
    assert y.shape == (2, 29, 35, 3) and y.std() > 0


def test_bad_options_are_one_line_errors():
    with pytest.raises(RtstyleError, match="strength"):
        Options(strength=1.5)
    with pytest.raises(RtstyleError, match="WIDTHxHEIGHT"):
        parse_size("640by360")
    assert parse_size("640x360") == (640, 360)
    with pytest.raises(RtstyleError, match="max-side"):
        Options(max_side=2)
