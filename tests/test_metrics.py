"""PSNR, SSIM, Y channel and modcrop against their formulas (SRCNN / Wang et al. 2004 protocol)."""
import math

import numpy as np
import pytest

from rtstyle import metrics


def test_rgb_to_y_is_matlab_rgb2ycbcr():
    rgb = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    np.testing.assert_allclose(metrics.rgb_to_y(rgb)[0], [16, 235, 16 + 65.481, 16 + 128.553, 16 + 24.966])


def test_psnr_formula():
    a = np.random.default_rng(0).integers(0, 256, (20, 30)).astype(np.float64)
    assert metrics.psnr(a, a + 5) == pytest.approx(10 * math.log10(255 ** 2 / 25))
    assert metrics.psnr(a, a) == math.inf


def _ssim_one_window(a, b):
    t = np.arange(-5, 6)
    g = np.exp(-t ** 2 / (2 * 1.5 ** 2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    mu_a, mu_b = (w * a).sum(), (w * b).sum()
    va, vb = (w * a * a).sum() - mu_a ** 2, (w * b * b).sum() - mu_b ** 2
    cov = (w * a * b).sum() - mu_a * mu_b
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    return (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a ** 2 + mu_b ** 2 + c1) * (va + vb + c2))


def test_ssim_is_the_mean_over_every_11x11_gaussian_window():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (15, 13)).astype(np.float64)
    b = np.clip(a + rng.normal(0, 40, a.shape), 0, 255)
    brute = np.mean([_ssim_one_window(a[i:i + 11, j:j + 11], b[i:i + 11, j:j + 11])
                     for i in range(5) for j in range(3)])
    assert metrics.ssim(a, b) == pytest.approx(brute)
    assert metrics.ssim(a[:11, :11], b[:11, :11]) == pytest.approx(_ssim_one_window(a[:11, :11], b[:11, :11]))
    assert metrics.ssim(a, a) == pytest.approx(1.0)
    assert metrics.ssim(a, b) < 0.95


def test_modcrop():
    assert metrics.modcrop(np.zeros((229, 345, 3)), 8).shape == (224, 344, 3)


def _upscaled(net, lr):
    import torch
    from rtstyle.imageio import to_image, to_tensor
    with torch.no_grad():
        return metrics.rgb_to_y(to_image(net.eval()(to_tensor(lr))))


def test_checkerboard_peak_finds_deconvolution_artefacts_not_photo_detail(shared):
    """On a real photo: the photo and its bicubic x4 score low, a deconvolution net at initialisation
    (Odena et al.'s checkerboard) scores high. (The shipped nets: the next test.)"""
    import torch
    from rtstyle.data import make_lr
    from rtstyle.imageio import read_image
    from rtstyle.imresize import imresize
    from rtstyle.nets import SRNet

    hr = read_image(shared / "data/sr/Set5/baby.png")[:192, :192]
    lr = make_lr(hr, 4)
    assert metrics.checkerboard_peak(metrics.rgb_to_y(hr)) < 10
    assert metrics.checkerboard_peak(metrics.rgb_to_y(imresize(lr, 4))) < 10
    torch.manual_seed(0)
    assert metrics.checkerboard_peak(_upscaled(SRNet(4, "batch", "deconv", width=0.5), lr)) > 100


def test_checkerboard_peak_needs_a_large_enough_image():
    with pytest.raises(metrics.RtstyleError, match="at least 32x32"):
        metrics.checkerboard_peak(np.zeros((20, 40)))


def _shipped_sr():
    from rtstyle.models import SHIPPED_DIR, list_models
    return [name for name, path, _ in list_models("sr") if path.parent == SHIPPED_DIR]


@pytest.mark.parametrize("name", _shipped_sr())
def test_shipped_sr_nets_have_no_checkerboard(shared, name):
    """Every shipped SR net's output on real photos has no period-2/4 spectrum peak (the first
    shipped nets, deconvolution upsampling, scored 28-1520 here)."""
    from rtstyle.data import make_lr
    from rtstyle.imageio import read_image
    from rtstyle.models import open_model

    model = open_model(name, "sr", backend=None)
    for image in ("Set5/baby.png", "Set14/comic.png"):
        hr = read_image(shared / "data/sr" / image)[:192, :192]
        assert metrics.checkerboard_peak(_upscaled(model.net, make_lr(hr, model.scale))) < 10, image
