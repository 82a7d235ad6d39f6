"""rtstyle: real-time neural style transfer and super-resolution (Johnson et al. 2016).

    >>> import rtstyle
    >>> rtstyle.RtstyleError.__name__
    'RtstyleError'

``rtstyle.stylize``, ``rtstyle.upscale``, ``rtstyle.Stylizer``, ``rtstyle.Upscaler`` and
``rtstyle.video`` (``rtstyle.api``) are loaded on first use, so that ``rtstyle --version`` does not
load PyTorch.
"""
import os

# The video pipeline runs decode, inference and encode threads side by side on few cores. OpenMP's
# default busy-waiting then steals the cores the other stages need: measured here, 2 torch threads
# ran the pipeline at 1.8 fps with busy-waiting and 20.9 fps with passive waiting. Must be set
# before torch loads its OpenMP runtime; an explicit user setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

from rtstyle.errors import RtstyleError  # noqa: E402 (after the OpenMP setting)

__all__ = ["RtstyleError", "Stylizer", "Upscaler", "stylize", "upscale", "video", "__version__"]
_API = {"Stylizer", "Upscaler", "stylize", "upscale", "video"}


def __getattr__(name: str):
    if name in _API:
        from rtstyle import api

        return getattr(api, name)
    raise AttributeError(f"module 'rtstyle' has no attribute {name!r}")
