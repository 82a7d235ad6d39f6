"""The Gatys et al. baseline: its objective, what one iteration is, and the `rtstyle gatys` command."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from rtstyle import gatys
from rtstyle.bench import random_vgg
from rtstyle.cli import main
from rtstyle.imageio import read_image, write_image


@pytest.fixture(scope="module")
def vgg():
    return random_vgg(torch.device("cpu"), seed=0)


def _images(size: int = 32):
    gen = torch.Generator().manual_seed(1)
    return torch.rand(1, 3, size, size, generator=gen), torch.rand(1, 3, size, size, generator=gen)


def test_objective_weights_terms_and_content_term_vanishes_at_the_content(vgg):
    content, style = _images()
    feats, grams = gatys.targets(vgg, content, style)
    w = {"content": 2.0, "style": 3.0, "tv": 5.0}
    terms = gatys.gatys_objective(vgg, content, feats, grams, w)
    assert float(terms["content"]) == 0.0
    assert float(terms["style"]) > 0 and float(terms["tv"]) > 0
    expected = 2.0 * terms["content"] + 3.0 * terms["style"] + 5.0 * terms["tv"]
    assert torch.allclose(terms["total"], expected)


def test_default_weights_are_the_training_weights():
    from rtstyle import losses

    assert gatys.default_weights() == {"content": losses.CONTENT_WEIGHT, "style": losses.STYLE_WEIGHT,
                                       "tv": losses.TV_WEIGHT}


def test_one_iteration_is_one_vgg_forward_and_backward(vgg):
    """What Table 1 counts: N iterations cost N passes over the image (plus 2 for the targets)."""
    content, style = _images()
    calls = []
    handle = vgg.register_forward_hook(lambda *a: calls.append(1))
    try:
        seen = []
        gatys.optimise(content, style, 4, vgg=vgg, callback=lambda i, t, y: seen.append(i), progress=False)
    finally:
        handle.remove()
    assert seen == [1, 2, 3, 4]
    assert len(calls) == 2 + 4


@pytest.mark.parametrize("init", ["content", "noise"])
def test_optimise_lowers_the_objective_and_returns_a_valid_image(vgg, init):
    content, style = _images()
    before = content.clone()
    totals = []
    # a style-dominated objective, so the content-initialised image has far to go whatever the defaults
    weights = {"content": 1.0, "style": 20.0, "tv": 1.0}
    y = gatys.optimise(content, style, 12, vgg=vgg, weights=weights, init=init,
                       callback=lambda i, t, _: totals.append(t["total"]), progress=False)
    assert y.shape == content.shape and float(y.min()) >= 0 and float(y.max()) <= 1
    assert min(totals[-3:]) < 0.5 * totals[0]
    assert torch.equal(content, before)


def test_cli_writes_the_image_at_the_requested_size(tmp_path, vgg_weights, shared, capsys):
    out = tmp_path / "g.png"
    content = shared / "data" / "content" / "chicago.jpg"
    style = shared / "data" / "styles" / "candy.jpg"
    rc = main(["gatys", str(content), "--style-image", str(style), "--iterations", "2", "--size", "48",
               "--vgg-weights", str(vgg_weights), "-o", str(out)])
    assert rc == 0, capsys.readouterr().err
    img = read_image(out)
    assert max(img.shape[:2]) == 48
    assert "2 L-BFGS iterations" in capsys.readouterr().out


def test_cli_bad_input_is_one_line_and_leaves_outputs_alone(tmp_path, capsys):
    content, style, out = tmp_path / "c.png", tmp_path / "s.png", tmp_path / "o.png"
    rgb = np.full((16, 16, 3), 128, np.uint8)
    for p in (content, style, out):
        write_image(p, rgb)
    before = out.read_bytes()
    assert main(["gatys", str(content), "--style-image", str(style), "-o", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["gatys", str(content), "--style-image", str(style), "--init", "zeros", "-o", str(tmp_path / "n.png")]) == 2
    assert "--init" in capsys.readouterr().err
    assert main(["gatys", str(content), "--style-image", str(tmp_path / "missing.jpg"), "-o", str(tmp_path / "m.png")]) == 2
    assert out.read_bytes() == before and not (tmp_path / "n.png").exists() and not (tmp_path / "m.png").exists()
