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


def _reuse_freed_memory() -> None:
    """Keep freed frame-sized buffers in the heap instead of giving them back to the kernel.

    Every video frame allocates tensors of a few MB; glibc serves those with fresh ``mmap``s and
    unmaps them on free, so each frame page-faults its memory in again. Measured on 640x360 video
    (2-core EPYC): the stabiliser's contrast restore 6-9 ms -> 2.5 ms per frame. Only on glibc, only
    where the user set no ``MALLOC_`` tuning of their own."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux") or any(k.startswith("MALLOC_") for k in os.environ):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # musl and others: their own allocator, left as it is
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's mallopt parameters
    libc.mallopt(m_mmap_threshold, 32 << 20)  # glibc's largest allowed value
    libc.mallopt(m_trim_threshold, 256 << 20)


_reuse_freed_memory()

__version__ = "0.1.0"

from rtstyle.errors import RtstyleError  # noqa: E402 (after the OpenMP setting)

__all__ = ["RtstyleError", "Stylizer", "Upscaler", "stylize", "upscale", "video", "__version__"]
_API = {"Stylizer", "Upscaler", "stylize", "upscale", "video"}


def __getattr__(name: str):
    if name in _API:
        from rtstyle import api

        return getattr(api, name)
    raise AttributeError(f"module 'rtstyle' has no attribute {name!r}")
