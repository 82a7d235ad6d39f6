"""Training data: random crops of a folder of photos, and the paper's low-resolution inputs for SR."""
from __future__ import annotations

import os
import random

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from rtstyle import interrupt
from rtstyle.errors import RtstyleError
from rtstyle.imageio import list_images, read_image, to_image, to_tensor
from rtstyle.imresize import imresize


def resize_short_side(rgb: np.ndarray, size: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = size / min(h, w)
    return cv2.resize(rgb, (max(size, round(w * s)), max(size, round(h * s))), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)


def random_crop(rgb: np.ndarray, size: int, rng: random.Random) -> np.ndarray:
    """A size x size crop at a random position (upscaling first if the image is too small)."""
    if min(rgb.shape[:2]) < size:
        rgb = resize_short_side(rgb, size)
    h, w = rgb.shape[:2]
    y, x = rng.randint(0, h - size), rng.randint(0, w - size)
    return rgb[y:y + size, x:x + size]


def gaussian_blur(x: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Separable Gaussian blur of an NCHW tensor, kernel radius 3 sigma, reflected borders."""
    r = max(1, int(3 * sigma + 0.5))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-t ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (r, r, r, r), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def make_lr(hr: np.ndarray, scale: int, blur: float = 0.0) -> np.ndarray:
    """A uint8 RGB image's low-resolution version: MATLAB bicubic ``imresize(hr, 1/scale)``, uint8.

    This is the SR literature's test input (``rtstyle eval sr``) and, with the same ``blur``, what the
    nets train on, so that training and test inputs match. ``blur > 0`` first applies a Gaussian
    blur of that sigma (the paper's training degradation is sigma 1, which teaches a net to undo a
    blur the benchmarks' inputs do not have).
    """
    if blur:
        hr = to_image(gaussian_blur(to_tensor(hr), blur))
    return imresize(hr, 1 / scale)


class ImageFolder(Dataset):
    """Every image under a folder, recursively; ``__getitem__`` returns a random training crop.

    ``mode="style"``: resize the shorter side to ``size`` and crop ``size`` x ``size`` (the paper
    trains on 256x256 COCO images). ``mode="sr"``: a random ``size`` patch ``hr`` and its
    low-resolution ``lr`` (``make_lr`` with ``blur``; ``size`` must be a multiple of ``scale``).
    """

    def __init__(self, root: str | os.PathLike, size: int, mode: str = "style", scale: int = 4, seed: int = 0,
                 blur: float = 0.0):
        self.paths = list_images(root)
        if not self.paths:
            raise RtstyleError(f"no images (jpg/png) found under {root}")
        if mode == "sr" and size % scale:
            raise RtstyleError(f"patch size {size} must be a multiple of the scale {scale}")
        self.size, self.mode, self.scale, self.blur = size, mode, scale, blur
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        rgb = read_image(self.paths[i])
        if self.mode == "style":
            rgb = resize_short_side(rgb, self.size)
        crop = random_crop(rgb, self.size, self.rng)
        if self.rng.random() < 0.5:
            crop = crop[:, ::-1]
        crop = np.ascontiguousarray(crop)
        if self.mode == "style":
            return to_tensor(crop)[0]
        return to_tensor(make_lr(crop, self.scale, self.blur))[0], to_tensor(crop)[0]

    def reseed(self, seed: int) -> None:
        self.rng = random.Random(seed)


def worker_init(worker_id: int) -> None:
    """Give each DataLoader worker its own crop positions; leave Ctrl-C, SIGTERM and SIGHUP to the
    main process (it saves the training state, then ends the workers)."""
    interrupt.ignore_in_child()
    info = torch.utils.data.get_worker_info()
    info.dataset.reseed(info.seed % 2 ** 32)
