"""The Python API (rtstyle.api): the README's examples as doctests, and what they promise: the same
kind out as in, nothing printed, one exception type, outputs checked before the work."""
from __future__ import annotations

import doctest
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import rtstyle
from rtstyle.demo import PHOTO
from rtstyle.imageio import read_image

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_examples() -> str:
    """The README's Python API block (the ```python fence after '### Python API')."""
    text = README.read_text()
    section = text[text.index("### Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_examples(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(PHOTO, tmp_path / "chelsea.jpg")
    test = doctest.DocTestParser().get_doctest(readme_examples(), {}, "README.md", str(README), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.failures == 0 and runner.tries >= 10
    assert read_image(tmp_path / "chelsea.wave.jpg").shape == (300, 451, 3)


def test_same_kind_out_and_nothing_printed(tmp_path, tiny_style, capfd):
    pil = pytest.importorskip("PIL.Image")
    rgb = read_image(PHOTO)[:64, :96]
    out = rtstyle.stylize(pil.fromarray(rgb), str(tiny_style), backend="torch")
    assert isinstance(out, pil.Image) and out.size == (96, 64) and out.mode == "RGB"
    arr = rtstyle.stylize(rgb, str(tiny_style), backend="auto")
    assert isinstance(arr, np.ndarray) and arr.shape == rgb.shape and arr.dtype == np.uint8
    path = rtstyle.stylize(PHOTO, str(tiny_style), output=tmp_path / "o.png", backend="torch")
    assert path == tmp_path / "o.png" and read_image(path).shape == (300, 451, 3)
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""


def test_one_exception_type_and_output_checked_first(tmp_path, tiny_style):
    (tmp_path / "o.png").write_bytes(b"keep")
    with pytest.raises(rtstyle.RtstyleError, match="overwrite=True"):
        rtstyle.stylize(PHOTO, str(tiny_style), output=tmp_path / "o.png", backend="torch")
    assert (tmp_path / "o.png").read_bytes() == b"keep"
    with pytest.raises(rtstyle.RtstyleError, match="uint8"):
        rtstyle.stylize(np.zeros((8, 8, 3), np.float32), str(tiny_style))
    with pytest.raises(rtstyle.RtstyleError, match="scale must be 4 or 8"):
        rtstyle.upscale(np.zeros((8, 8, 3), np.uint8), 3)
    with pytest.raises(rtstyle.RtstyleError):
        rtstyle.Stylizer(str(tiny_style), device="cuda:7")
    assert rtstyle.Stylizer(str(tiny_style), backend="torch").backend == "torch"


def test_verbose_says_what_it_does(tiny_style, capfd):
    from rtstyle import api

    api._open.cache_clear()  # an open model is reused silently; opening one is what auto reports
    rtstyle.stylize(np.zeros((16, 16, 3), np.uint8), str(tiny_style), backend="auto", verbose=True)
    assert "rtstyle: backend auto" in capfd.readouterr().err


def test_readme_has_no_relative_images_or_links():
    """The README is also the package index page (pyproject's readme), where paths relative to the
    source tree do not resolve: pictures are named as paths in the source tree instead."""
    relative = [t for t in re.findall(r"\]\(([^)\s]+)\)", README.read_text())
                if not re.match(r"(https?:|mailto:|#)", t)]
    assert relative == []


def test_zoo_styles_name_the_output_by_style(tmp_path):
    """A style picked from the shipped multi-style file names the output, as the CLI does."""
    src = tmp_path / "cat.jpg"
    shutil.copy(PHOTO, src)
    assert rtstyle.stylize(src, "wave", max_side=64, backend="torch") == tmp_path / "cat.wave.jpg"
    blend = rtstyle.stylize(src, "candy:0.5,wave:0.5", max_side=64, backend="torch")
    assert blend == tmp_path / "cat.candy+wave.jpg" and blend.exists()
