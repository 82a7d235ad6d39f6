import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rtstyle.imresize import cubic, imresize, weights_matrix


def test_cubic_kernel_values():
    # Keys (1981), a = -0.5: 1 at 0, 0 at the integers, these values in between.
    x = np.array([0.0, 0.25, 0.75, 1.0, 1.25, 1.75, 2.0, 2.5])
    np.testing.assert_allclose(cubic(x), [1, 0.8671875, 0.2265625, 0, -0.0703125, -0.0234375, 0, 0])
    np.testing.assert_allclose(cubic(-x), cubic(x))


@pytest.mark.parametrize("n_in,n_out,scale", [(16, 4, 0.25), (40, 5, 0.125), (7, 28, 4.0), (9, 18, 2.0)])
def test_weights_rows_sum_to_one(n_in, n_out, scale):
    mat = weights_matrix(n_in, n_out, scale)
    assert mat.shape == (n_out, n_in)
    np.testing.assert_allclose(mat.sum(axis=1), 1.0)


@pytest.mark.parametrize("scale", [0.25, 0.125, 4, 8])
def test_constant_image_stays_constant(scale):
    img = np.full((48, 40, 3), 137, np.uint8)
    out = imresize(img, scale)
    assert out.dtype == np.uint8 and out.shape == (int(48 * scale), int(40 * scale), 3)
    assert (out == 137).all()
    np.testing.assert_allclose(imresize(img.astype(np.float64) / 255, scale), 137 / 255)


def test_downscaling_a_ramp_samples_it_at_the_pixel_centres():
    # Output pixel i (1-based) of a 1/4 reduction sits at input position 4i - 1.5; the stretched
    # cubic kernel is symmetric about it, so a linear ramp comes out exactly there (away from borders).
    ramp = np.arange(1, 65, dtype=np.float64)[:, None] * np.ones((1, 5))
    out = imresize(ramp, 0.25)[:, 0]
    i = np.arange(1, 17)
    np.testing.assert_allclose(out[2:-2], (4 * i - 1.5)[2:-2])


def test_upscaling_uses_symmetric_borders():
    # imresize((1:8)', 2): output 1 sits at 0.75; taps at -2..3 mirror to values 3 2 1 1 2 3 with
    # weights cubic(2.75, 1.75, 0.75, -0.25, -1.25, -2.25) -> 29/32 (zero padding or clamping differ).
    ramp = np.arange(1, 9, dtype=np.float64)[:, None] * np.ones((1, 3))
    out = imresize(ramp, 2)[:, 0]
    assert out[0] == pytest.approx(29 / 32)
    assert out[-1] == pytest.approx(8 + 1 - 29 / 32)
    np.testing.assert_allclose(out[4:-4], (np.arange(1, 17) / 2 + 0.25)[4:-4])  # linear inside


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_antialiased_downscale_matches_pytorch_inside(factor):
    # PyTorch's antialiased bicubic uses the same a = -0.5 kernel stretched by the factor; it only
    # renormalises instead of mirroring at the borders, so interiors must agree.
    x = np.random.default_rng(0).random((96, 80)) * 255
    ours = imresize(x, 1 / factor)
    ref = F.interpolate(torch.from_numpy(x)[None, None], scale_factor=1 / factor, mode="bicubic",
                        antialias=True, align_corners=False)[0, 0].numpy()
    m = 3
    np.testing.assert_allclose(ours[m:-m, m:-m], ref[m:-m, m:-m], atol=1e-9)


def test_uint8_output_is_rounded_and_saturated():
    step = np.zeros((16, 16), np.uint8)
    step[:, 8:] = 255
    out = imresize(step, 4)
    assert out.dtype == np.uint8
    # The cubic overshoots past 0 and 255 next to the edge: saturated, not wrapped around.
    row = imresize(step.astype(np.float64), 4)[0]
    assert row.min() < 0 and row.max() > 255
    assert out.min() == 0 and out.max() == 255
    np.testing.assert_array_equal(out[0], np.floor(np.clip(row, 0, 255) + 0.5))


def test_size_argument_and_errors():
    img = np.zeros((30, 20, 3), np.uint8)
    assert imresize(img, size=(15, 40)).shape == (15, 40, 3)
    with pytest.raises(ValueError):
        imresize(img)
    with pytest.raises(ValueError):
        imresize(img, 0.5, size=(15, 10))
