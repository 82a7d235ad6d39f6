import numpy as np
import pytest
import torch

from rtstyle.data import ImageFolder, gaussian_blur, make_lr
from rtstyle.errors import RtstyleError
from rtstyle.imageio import to_image
from rtstyle.imresize import imresize


def test_style_crops_from_real_photos(shared):
    ds = ImageFolder(shared / "data" / "train", 64, "style")
    assert len(ds) == 2728
    x = ds[0]
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1


def test_sr_patches_and_degradation(shared):
    ds = ImageFolder(shared / "data" / "train", 96, "sr", scale=4)
    lr, hr = ds[5]
    assert hr.shape == (3, 96, 96) and lr.shape == (3, 24, 24)
    # the LR input is the benchmarks' test input: MATLAB bicubic of the HR patch, no blur
    hr_u8 = to_image(hr)
    assert np.array_equal(to_image(lr), imresize(hr_u8, 0.25))
    blurred = make_lr(hr_u8, 4, blur=1.0)
    assert blurred.shape == (24, 24, 3) and np.abs(blurred.astype(int) - imresize(hr_u8, 0.25)).mean() > 1


def test_gaussian_blur_matches_sampled_kernel():
    x = torch.zeros(1, 1, 15, 15)
    x[0, 0, 7, 7] = 1
    y = gaussian_blur(x, 1.0)[0, 0]
    t = np.arange(-3, 4)
    k = np.exp(-t ** 2 / 2)
    k /= k.sum()
    assert np.allclose(y[4:11, 4:11].numpy(), np.outer(k, k), atol=1e-6)
    assert torch.isclose(y.sum(), torch.tensor(1.0))


def test_make_lr_keeps_flat_images_flat():
    lr = make_lr(np.full((32, 32, 3), 64, np.uint8), 8, blur=1.0)
    assert lr.shape == (4, 4, 3) and (lr == 64).all()


def test_empty_folder_and_bad_patch_size(tmp_path):
    with pytest.raises(RtstyleError, match="no images"):
        ImageFolder(tmp_path, 64)
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(RtstyleError, match="multiple"):
        ImageFolder(tmp_path, 30, "sr", scale=4)
