"""Image quality metrics of the super-resolution literature, on uint8 images as numpy arrays.

The protocol of SRCNN (Dong et al. 2016) that Johnson et al. 2016 (section 4.2) report in: both
metrics on the Y channel of BT.601 YCbCr (MATLAB ``rgb2ycbcr``, 16-235, not rounded), ``scale``
border pixels cropped, SSIM of Wang et al. 2004 (11x11 Gaussian, sigma 1.5, K = 0.01 / 0.03,
L = 255, "valid" window positions).
"""
from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from rtstyle.errors import RtstyleError


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """Luma of an HxWx3 uint8 RGB image as MATLAB ``rgb2ycbcr`` (BT.601, range 16-235), in float64.

    >>> rgb_to_y(np.array([[[0, 0, 0], [255, 255, 255]]], dtype=np.uint8)).round(3).tolist()
    [[16.0, 235.0]]
    """
    x = rgb.astype(np.float64)
    return 16.0 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255.0


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB; infinite for identical images.

    >>> a = np.zeros((4, 4))
    >>> round(psnr(a, a + 1), 2)   # MSE 1: 10 log10(255^2)
    48.13
    >>> psnr(a, a)
    inf
    """
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10.0 * math.log10(peak ** 2 / mse)


def _gaussian_valid(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Separable filtering keeping only the positions where the whole window fits (MATLAB 'valid')."""
    x = sliding_window_view(x, len(k), axis=0) @ k
    return sliding_window_view(x, len(k), axis=1) @ k


def ssim(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """Mean SSIM of two grayscale images (Wang et al. 2004, their ``ssim_index.m``, no downsampling).

    >>> a = np.arange(144, dtype=np.float64).reshape(12, 12)
    >>> ssim(a, a)
    1.0
    >>> ssim(a, 255 - a) < 0
    True
    """
    if min(a.shape) < 11:
        raise RtstyleError(f"SSIM needs images of at least 11x11 pixels, not {a.shape[1]}x{a.shape[0]}")
    t = np.arange(-5, 6, dtype=np.float64)
    k = np.exp(-t ** 2 / (2 * 1.5 ** 2))
    k /= k.sum()
    a, b = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    mu_a, mu_b = _gaussian_valid(a, k), _gaussian_valid(b, k)
    var_a = _gaussian_valid(a * a, k) - mu_a ** 2
    var_b = _gaussian_valid(b * b, k) - mu_b ** 2
    cov = _gaussian_valid(a * b, k) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom / right so that height and width are multiples of ``scale``.

    >>> modcrop(np.zeros((229, 345, 3)), 8).shape
    (224, 344, 3)
    """
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def sr_scores(sr: np.ndarray, hr: np.ndarray, border: int, gray: bool = False) -> tuple[float, float]:
    """(PSNR, SSIM) of two uint8 RGB images on Y, ``border`` pixels cropped on every side.

    ``gray``: the ground truth is a one-channel file (Set14's bridge). It is compared on its gray
    values 0-255, against the output's full-range luma, as the SR literature's code does (it skips
    ``rgb2ycbcr`` for one-channel files). Y in 16-235 instead would add 1.3 dB to bridge and 0.09 dB
    to the Set14 mean. (Set14's man is stored as RGB and goes through Y like the others.)
    """
    if sr.shape != hr.shape:
        raise RtstyleError(f"output is {sr.shape[1]}x{sr.shape[0]}, ground truth {hr.shape[1]}x{hr.shape[0]}")
    if gray:
        y_sr, y_hr = (rgb_to_y(sr) - 16.0) * 255.0 / 219.0, hr[..., 0].astype(np.float64)
    else:
        y_sr, y_hr = rgb_to_y(sr), rgb_to_y(hr)
    if border:
        y_sr, y_hr = y_sr[border:-border, border:-border], y_hr[border:-border, border:-border]
    return psnr(y_sr, y_hr), ssim(y_sr, y_hr)


def checkerboard_peak(gray: np.ndarray, periods: tuple[int, ...] = (2, 4)) -> float:
    """How far the spectrum of a grayscale image peaks at the checkerboard frequencies of x2 upsampling.

    Deconvolution (and unconstrained sub-pixel) upsampling leaves patterns repeating every 2 or 4
    pixels (Odena et al. 2016), sharp peaks in the power spectrum at frequencies k/period. This is
    the largest ratio, over those frequencies (horizontal, vertical and diagonal), of the power
    there to the median power of the 7x7 bins around it (Hann-windowed, the image cropped to a
    multiple of the periods). Photos and their bicubic upscales score under ~10 (Set5's
    baby: 7); the checkerboards of the first shipped SR nets scored 47 and 253.

    >>> rng = np.random.default_rng(0)
    >>> noise = rng.normal(size=(64, 64))
    >>> checkerboard_peak(noise) < 5
    True
    >>> board = noise + 0.5 * np.indices((64, 64)).sum(0) % 2   # a faint period-2 checkerboard
    >>> checkerboard_peak(board) > 100
    True
    """
    m = math.lcm(*periods)
    h, w = (s - s % m for s in gray.shape)
    if min(h, w) < 8 * m:
        raise RtstyleError(f"checkerboard_peak needs at least {8 * m}x{8 * m} pixels, not {gray.shape[1]}x{gray.shape[0]}")
    x = gray[:h, :w].astype(np.float64)
    x = (x - x.mean()) * np.outer(np.hanning(h), np.hanning(w))
    power = np.abs(np.fft.fft2(x)) ** 2
    freqs = {(fy, fx) for p in periods for fy in (0, h // p) for fx in (0, w // p)} - {(0, 0)}
    worst = 0.0
    for fy, fx in freqs:
        ys, xs = np.arange(fy - 3, fy + 4) % h, np.arange(fx - 3, fx + 4) % w
        around = power[np.ix_(ys, xs)].copy()
        around[3, 3] = np.nan  # the bin itself
        # its 3x3 neighbours too: the Hann window spreads a peak into them
        around[2:5, 2:5] = np.nan
        worst = max(worst, power[fy, fx] / np.nanmedian(around))
    return float(worst)
