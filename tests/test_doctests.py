"""The docstring examples of every rtstyle module run as tests (they are small and fast)."""
import doctest
import importlib
import pkgutil

import pytest

import rtstyle

MODULES = sorted(m.name for m in pkgutil.walk_packages(rtstyle.__path__, "rtstyle.") if m.name != "rtstyle.__main__")


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_the_small_public_functions_have_examples():
    finder = doctest.DocTestFinder()
    have = {t.name for name in ("rtstyle.losses", "rtstyle.imresize", "rtstyle.metrics", "rtstyle.frames")
            for t in finder.find(importlib.import_module(name)) if t.examples}
    assert {"rtstyle.losses.gram", "rtstyle.losses.tv_loss", "rtstyle.imresize.imresize", "rtstyle.metrics.psnr",
            "rtstyle.metrics.ssim", "rtstyle.frames.preserve_color"} <= have
