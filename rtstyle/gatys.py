"""The optimisation baseline of Gatys et al. (2016): optimise the image itself with L-BFGS.

The objective is the one the transform nets are trained with (Johnson et al. 2016, section 3):
feature reconstruction at relu3_3, Gram style losses at relu1_2..relu4_3, total variation, weighted
by ``rtstyle.train``'s CONTENT_WEIGHT / STYLE_WEIGHT / TV_WEIGHT.

What one iteration is: one L-BFGS update, i.e. one forward and one backward pass through VGG-16
(``torch.optim.LBFGS`` with ``max_iter=1`` and no line search, its history kept across steps). The
paper's Table 1 counts L-BFGS iterations; without a line search each is exactly one function
evaluation, so the count is unambiguous.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from rtstyle import losses
from rtstyle.backends import resolve_device
from rtstyle.errors import RtstyleError, progress as progress_bar
from rtstyle.imageio import read_image, resize_longer, to_image, to_tensor, write_image
from rtstyle.outputs import check_output
from rtstyle.vgg import STYLE_LAYERS, VGG16Features, load_vgg16

CONTENT_LAYER = "relu3_3"


def default_weights() -> dict[str, float]:
    """The training weights: {"content", "style", "tv"}."""
    return {"content": losses.CONTENT_WEIGHT, "style": losses.STYLE_WEIGHT, "tv": losses.TV_WEIGHT}


@torch.no_grad()
def targets(vgg: VGG16Features, content: torch.Tensor, style: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(relu3_3 features of ``content``, Gram matrices of ``style`` at relu1_2..relu4_3)."""
    content_feats = vgg(content)[CONTENT_LAYER]
    style_grams = [losses.gram(f) for f in vgg(style).values()]
    return content_feats, style_grams


def gatys_objective(vgg: VGG16Features, y: torch.Tensor, content_feats: torch.Tensor,
                    style_grams: list[torch.Tensor], weights: dict[str, float] | None = None) -> dict[str, torch.Tensor]:
    """The weighted perceptual objective of image ``y`` (1x3xHxW in [0, 1]).

    The same function training minimises (``losses.style_transfer_loss``). Returns {"total", "content",
    "style", "tv"}: the three terms unweighted, ``total`` weighted. ``vgg`` must return exactly the
    style layers (``load_vgg16()``'s default).
    """
    w = weights or default_weights()
    norms = torch.tensor(w["style_norms"]) if "style_norms" in w else None  # a balanced model's objective
    return losses.style_transfer_loss(y, vgg(y), content_feats, style_grams, w["content"], w["style"], w["tv"],
                                      CONTENT_LAYER, norms)


def optimise(content: torch.Tensor, style: torch.Tensor, iterations: int, *, vgg: VGG16Features,
             weights: dict[str, float] | None = None, init: str = "content", seed: int = 0,
             callback: Callable[[int, dict[str, float], torch.Tensor], None] | None = None,
             progress: bool = True) -> torch.Tensor:
    """Stylise ``content`` (1x3xHxW in [0, 1]) like ``style`` by ``iterations`` L-BFGS updates of the image.

    Runs on ``vgg``'s device. ``init`` is ``content`` (start from the photo) or ``noise`` (uniform noise,
    as Gatys et al.). After each iteration ``callback(i, terms, y)`` gets the 1-based iteration number,
    the objective's terms as floats (measured before that update) and the current image. Returns the
    image clamped to [0, 1], detached, on ``vgg``'s device. The image is optimised unconstrained and
    clamped only at the end, so that the clamp does not break L-BFGS's curvature history.
    """
    if init not in ("content", "noise"):
        raise ValueError(f"init must be 'content' or 'noise', not {init!r}")
    device = vgg.mean.device
    content, style = content.to(device).contiguous(), style.to(device).contiguous()
    content_feats, style_grams = targets(vgg, content, style)
    if init == "content":
        y = content.clone(memory_format=torch.contiguous_format)
    else:
        y = torch.rand(content.shape, generator=torch.Generator().manual_seed(seed)).to(device)
    y.requires_grad_(True)
    optimizer = torch.optim.LBFGS([y], lr=1.0, max_iter=1, history_size=100,
                                  tolerance_grad=0.0, tolerance_change=0.0)
    terms: dict[str, torch.Tensor] = {}

    def closure() -> torch.Tensor:
        nonlocal terms
        optimizer.zero_grad(set_to_none=True)
        terms = gatys_objective(vgg, y, content_feats, style_grams, weights)
        terms["total"].backward()
        return terms["total"]

    bar = progress_bar(range(1, iterations + 1), unit="it", dynamic_ncols=True, desc="L-BFGS", disable=not progress)
    for i in bar:
        optimizer.step(closure)
        if progress or callback:
            values = {k: float(v.detach()) for k, v in terms.items()}
            bar.set_postfix(loss=f"{values['total']:.4g}", refresh=False)
            if callback:
                callback(i, values, y.detach())
    bar.close()
    return y.detach().clamp(0, 1)


def stylise_file(content_path: str, style_path: str, out: str, *, iterations: int = 500, size: int | None = 512,
                 style_size: int | None = None, init: str = "content", vgg_weights: str | None = None,
                 device: str | None = None, overwrite: bool = False, seed: int = 0) -> Path:
    """``rtstyle gatys``: optimise an image file and write the result atomically.

    The content image is resized so its longer side is ``size`` (none: as is); the style image to
    ``style_size`` (default: the same longer side as the content). Ctrl-C writes the image reached so far.
    """
    if iterations < 1:
        raise RtstyleError(f"--iterations must be at least 1, not {iterations}")
    if init not in ("content", "noise"):
        raise RtstyleError(f"--init must be content or noise, not {init!r}")
    out_path = check_output([content_path, style_path, *([vgg_weights] if vgg_weights else [])], Path(out), overwrite)
    content_rgb = resize_longer(read_image(content_path), size)
    style_rgb = resize_longer(read_image(style_path), style_size or max(content_rgb.shape[:2]))
    dev = resolve_device(device)
    vgg = load_vgg16(vgg_weights, STYLE_LAYERS, dev)
    latest: dict[str, object] = {}

    def keep(i: int, terms: dict[str, float], y: torch.Tensor) -> None:
        latest.update(i=i, y=y)

    try:
        y = optimise(to_tensor(content_rgb), to_tensor(style_rgb), iterations, vgg=vgg, init=init, seed=seed,
                     callback=keep)
    except KeyboardInterrupt:
        if "y" in latest:
            write_image(out_path, to_image(latest["y"]), overwrite)
            print(f"interrupted after {latest['i']} iterations; wrote that image to {out_path}")
        raise
    write_image(out_path, to_image(y), overwrite)
    print(f"wrote {out_path} ({content_rgb.shape[1]}x{content_rgb.shape[0]}, {iterations} L-BFGS iterations)")
    return out_path
