"""Perceptual losses of Johnson et al. 2016, section 3.1-3.2, as plain functions, their weights,
and the style target they compare with.

Every loss returns the mean over the batch of the per-image loss written in the paper.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from rtstyle.imageio import read_image, resize_longer, to_tensor

# Loss weights for torchvision's VGG-16 on [0, 1] inputs with the paper's normalisations (eq. 2-4).
# The paper's values were tuned for Caffe VGG on [0, 255] inputs and do not transfer. Chosen by
# training candy.jpg on the CPU recipe (400 steps, 128 px crops): with a style weight of 20 or 4 the
# content loss rose from ~20 to ~45 and the output was the style's texture alone; with 1 the scene
# stays legible (content ~33, style ~27 after 170 steps). TV is a light smoothing (~0.1 untrained).
CONTENT_WEIGHT = 1.0
STYLE_WEIGHT = 1.0
TV_WEIGHT = 1.0


def load_style_target(style_image: str, style_size: int | None) -> torch.Tensor:
    """The style image as a 1x3xHxW tensor, its longer side resized to ``style_size`` (if given)."""
    return to_tensor(resize_longer(read_image(style_image), style_size))


def feature_loss(phi_yhat: torch.Tensor, phi_y: torch.Tensor) -> torch.Tensor:
    """Feature reconstruction loss: 1/(C_j H_j W_j) * ||phi_j(y_hat) - phi_j(y)||_2^2 (eq. 2).

    >>> feature_loss(torch.ones(2, 3, 4, 4), torch.zeros(2, 3, 4, 4)).item()
    1.0
    """
    return ((phi_yhat - phi_y) ** 2).mean(dim=(1, 2, 3)).mean()


def gram(phi: torch.Tensor) -> torch.Tensor:
    """Gram matrix G_j = psi psi^T / (C_j H_j W_j), psi the C_j x H_jW_j reshaped features (eq. 3).

    Computed in fp32 even under autocast: the sums overflow fp16.

    >>> gram(torch.ones(1, 2, 3, 3))   # every product 1, summed over 9 positions, / (2 * 9)
    tensor([[[0.5000, 0.5000],
             [0.5000, 0.5000]]])
    """
    b, c, h, w = phi.shape
    psi = phi.reshape(b, c, h * w).float()
    return psi @ psi.transpose(1, 2) / (c * h * w)


def style_loss(grams_yhat: list[torch.Tensor], grams_s: list[torch.Tensor]) -> torch.Tensor:
    """Style reconstruction loss: sum over layers of ||G_j(y_hat) - G_j(y_s)||_F^2 (eq. 4).

    ``grams_s`` may have batch size 1 (one style image) and broadcasts over the batch.

    >>> style_loss([torch.ones(4, 2, 2)], [torch.zeros(1, 2, 2)]).item()   # 4 entries of 1, per image
    4.0
    """
    return sum(((g - s) ** 2).sum(dim=(1, 2)).mean() for g, s in zip(grams_yhat, grams_s))


def layer_distances(grams_yhat: list[torch.Tensor], grams_s: list[torch.Tensor]) -> torch.Tensor:
    """Per image and layer, ||G_j(y_hat) - G_j(y_s)||_F^2: a (batch, layers) tensor. ``grams_s`` have
    batch 1 or the batch's size (each image its own style's Grams).

    >>> layer_distances([torch.ones(2, 2, 2)], [torch.zeros(1, 2, 2)])
    tensor([[4.],
            [4.]])
    """
    return torch.stack([((g - s) ** 2).sum(dim=(1, 2)) for g, s in zip(grams_yhat, grams_s)], dim=1)


def balanced_style_loss(grams_yhat: list[torch.Tensor], grams_s: list[torch.Tensor],
                        norms: torch.Tensor) -> torch.Tensor:
    """The style loss with each layer's distance divided by ``norms`` (batch or 1, layers): the mean
    distance of unchanged training photos to that painting at that layer. An unchanged photo then
    scores 1 per layer for every painting, so one style weight serves a painting whose Grams are
    ~8 from a photo's (the_scream) and one ~75 away (candy) alike.

    >>> balanced_style_loss([torch.ones(1, 2, 2)], [torch.zeros(1, 2, 2)], torch.tensor([[4.0]])).item()
    1.0
    """
    return (layer_distances(grams_yhat, grams_s) / norms).sum(dim=1).mean()


def random_warp(x: torch.Tensor, generator: torch.Generator | None = None, shift: float = 2.0,
                degrees: float = 1.0, zoom: float = 0.02) -> tuple[torch.Tensor, torch.Tensor]:
    """A small random affine motion per image (translation up to ``shift`` px, rotation up to
    ``degrees``, scale up to +-``zoom``), as the sampling grid for ``warp``, and ``x`` warped by it.

    The motion between two video frames, made from one still (Wang et al. 2020)."""
    b, _, h, w = x.shape
    r = torch.rand(b, 4, generator=generator, device="cpu") * 2 - 1
    angle, s = r[:, 0] * math.radians(degrees), 1 + r[:, 1] * zoom
    cos, sin = torch.cos(angle) * s, torch.sin(angle) * s
    theta = torch.stack([torch.stack([cos, -sin * h / w, r[:, 2] * 2 * shift / w], 1),
                         torch.stack([sin * w / h, cos, r[:, 3] * 2 * shift / h], 1)], 1)
    grid = F.affine_grid(theta.to(x.device, torch.float32), (b, 1, h, w), align_corners=False)
    return grid, warp(x, grid)


def warp(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """``x`` resampled at ``grid`` (bilinear, borders reflected), in fp32."""
    return F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def temporal_loss(y_moved: torch.Tensor, y: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Compound regularisation (Wang et al., AAAI 2020): the output for the warped and noised input,
    ``y_moved``, against the warped output ``warp(y)``, as a mean squared difference (outputs in [0, 1]).

    >>> y = torch.rand(1, 3, 8, 8)
    >>> grid, _ = random_warp(y, shift=0, degrees=0, zoom=0)   # no motion: the identity grid
    >>> round(temporal_loss(y, y, grid).item(), 6)
    0.0
    """
    return ((y_moved.float() - warp(y, grid)) ** 2).mean(dim=(1, 2, 3)).mean()


def tv_loss(y: torch.Tensor) -> torch.Tensor:
    """Total variation regulariser (Mahendran & Vedaldi 2015, beta = 1, anisotropic):
    the mean absolute difference between horizontal and vertical neighbours, summed.

    >>> tv_loss(torch.zeros(1, 3, 4, 4)).item()
    0.0
    >>> stripes = torch.tensor([0.0, 1.0]).repeat(1, 1, 4, 2)   # columns alternate 0, 1
    >>> tv_loss(stripes).item()   # every horizontal step is 1, no vertical one
    1.0
    """
    dx = (y[:, :, :, 1:] - y[:, :, :, :-1]).abs().mean(dim=(1, 2, 3))
    dy = (y[:, :, 1:, :] - y[:, :, :-1, :]).abs().mean(dim=(1, 2, 3))
    return (dx + dy).mean()


def pixel_loss(y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pixel loss: 1/(CHW) * ||y_hat - y||_2^2 (section 3.2, 'simple loss functions').

    >>> pixel_loss(torch.full((1, 3, 2, 2), 0.5), torch.zeros(1, 3, 2, 2)).item()
    0.25
    """
    return ((y_hat - y) ** 2).mean(dim=(1, 2, 3)).mean()


def style_transfer_loss(y_hat: torch.Tensor, feats_yhat: dict[str, torch.Tensor], content_target: torch.Tensor,
                        grams_s: list[torch.Tensor], content_weight: float, style_weight: float,
                        tv_weight: float, content_layer: str = "relu3_3",
                        style_norms: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The objective both training (eq. 5) and Gatys et al.'s optimisation minimise:
    lambda_c * l_feat(relu3_3) + lambda_s * l_style(relu1_2..relu4_3) + lambda_TV * l_TV.

    ``feats_yhat`` are the VGG activations of ``y_hat``; ``content_target`` the content image's
    activation at ``content_layer``; ``style_norms`` (layers,), when given, make the style term the
    balanced one (``balanced_style_loss``). Returns every term and ``total``.
    """
    content = feature_loss(feats_yhat[content_layer].float(), content_target.float())
    grams = [gram(f) for f in feats_yhat.values()]
    style = (style_loss(grams, grams_s) if style_norms is None
             else balanced_style_loss(grams, grams_s, style_norms.reshape(1, -1).to(content.device)))
    tv = tv_loss(y_hat.float())
    total = content_weight * content + style_weight * style + tv_weight * tv
    return {"total": total, "content": content, "style": style, "tv": tv}
