"""MATLAB's ``imresize`` (bicubic, antialiased when shrinking), the resize of the SR literature.

SRCNN, VDSR and Johnson et al. 2016 make their low-resolution test images and the bicubic baseline
with MATLAB's ``imresize(img, 1/scale)`` and ``imresize(lr, scale)``. OpenCV's and PyTorch's bicubic
differ from it (kernel coefficient a = -0.75, or no antialiasing, or other borders), enough to move
Set5 PSNR by tenths of a dB, so the evaluation uses this port.

What MATLAB does, and this module too: the Keys cubic kernel with a = -0.5; when shrinking by
``s < 1`` the kernel is stretched to ``s * cubic(s * x)`` (4/s taps) so that it also low-passes;
output pixel ``i`` (1-based) samples input position ``i / s + (1 - 1/s) / 2``; weights are normalised
to sum to 1; borders are mirrored (symmetric, edge pixel repeated). Height is resized before width
unless width shrinks more. A uint8 image is resized in double precision and rounded back to uint8
(half away from zero, saturated) after each of the two passes, as MATLAB's ``imresizemex`` returns
the class of its input.
"""
from __future__ import annotations

import math

import numpy as np


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``).

    >>> cubic(np.array([0.0, 0.5, 1.0, 1.5, 2.0])).tolist()
    [1.0, 0.5625, 0.0, -0.0625, 0.0]
    """
    ax = np.abs(x)
    ax2, ax3 = ax ** 2, ax ** 3
    return ((1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def weights_matrix(in_len: int, out_len: int, scale: float, antialias: bool = True) -> np.ndarray:
    """The ``out_len x in_len`` matrix that resizes one dimension (MATLAB's ``contributions``).

    Each row is one output sample's weights, summing to 1:

    >>> m = weights_matrix(8, 4, 0.5)
    >>> m.shape, np.allclose(m.sum(axis=1), 1)
    ((4, 8), True)
    """
    if scale < 1 and antialias:
        def kernel(x):
            return scale * cubic(scale * x)
        width = 4.0 / scale
    else:
        kernel, width = cubic, 4.0
    u = np.arange(1, out_len + 1, dtype=np.float64) / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]           # 1-based input positions
    w = kernel(u[:, None] - idx)
    w /= w.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
    cols = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    mat = np.zeros((out_len, in_len))
    np.add.at(mat, (np.repeat(np.arange(out_len), taps), cols.ravel()), w.ravel())
    return mat


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.floor(np.clip(x, 0, 255) + 0.5).astype(np.uint8)


def imresize(img: np.ndarray, scale: float | None = None, size: tuple[int, int] | None = None,
             antialias: bool = True) -> np.ndarray:
    """Resize an HxW or HxWxC image like MATLAB ``imresize(img, scale)`` or ``imresize(img, [h w])``.

    uint8 in -> uint8 out (rounded after each pass, as MATLAB); float in -> float64 out, unclipped.

    >>> flat = np.full((8, 6, 3), 200, np.uint8)
    >>> small = imresize(flat, 0.5)
    >>> small.shape, small.dtype.name, int(small.min()), int(small.max())   # a flat image stays flat
    ((4, 3, 3), 'uint8', 200, 200)
    >>> imresize(np.zeros((5, 7)), size=(10, 3)).shape
    (10, 3)
    """
    if (scale is None) == (size is None):
        raise ValueError("give exactly one of scale and size")
    h, w = img.shape[:2]
    if size is None:
        scales = (float(scale), float(scale))
        size = (math.ceil(h * scale), math.ceil(w * scale))
    else:
        scales = (size[0] / h, size[1] / w)
    is_uint8 = img.dtype == np.uint8
    out = img.astype(np.float64)
    for dim in sorted((0, 1), key=lambda d: scales[d]):  # stable: height first on a tie
        mat = weights_matrix(out.shape[dim], size[dim], scales[dim], antialias)
        out = np.tensordot(mat, out, axes=([1], [dim]))  # the resized axis comes first
        out = np.moveaxis(out, 0, dim)
        if is_uint8:
            out = _to_uint8(out)
    return out
