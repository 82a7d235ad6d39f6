"""Shared fixtures: the data beside the repository (../shared, via $RTSTYLE_SHARED) and tiny models."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

from rtstyle.checkpoint import save_model
from rtstyle.nets import build_net

torch.set_num_threads(min(2, os.cpu_count() or 1))


# A test run started in the background or under nohup inherits ignored SIGINT/SIGHUP, which rtstyle
# rightly keeps ignored; the signal tests need them live, in this process and in its children.
for _sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    if signal.getsignal(_sig) == signal.SIG_IGN:
        signal.signal(_sig, signal.default_int_handler if _sig == signal.SIGINT else signal.SIG_DFL)

VGG_HELP = ("get torchvision's ImageNet VGG-16 (https://download.pytorch.org/models/vgg16-397923af.pth) "
            "and point RTSTYLE_VGG16 at it")
DATA_HELP = ("shared data not found: set RTSTYLE_SHARED to a folder holding data/ (a few public photos in "
             "data/train, e.g. BSD100 or Set14, and clips in data/video) and assets/vgg16/; " + VGG_HELP)


def _shared_root() -> Path | None:
    env = os.environ.get("RTSTYLE_SHARED")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[1].parent / "shared")
    return next((p for p in candidates if (p / "data").is_dir()), None)


@pytest.fixture(scope="session")
def shared() -> Path:
    """The shared data folder (VGG weights, images, clips); tests needing it skip without it."""
    root = _shared_root()
    if root is None:
        pytest.skip(DATA_HELP)
    return root


@pytest.fixture(scope="session")
def vgg_weights(shared: Path) -> Path:
    path = Path(os.environ.get("RTSTYLE_VGG16") or shared / "assets" / "vgg16" / "vgg16_features.pth")
    if not path.is_file():
        pytest.skip(f"VGG-16 weights not found at {path}: {VGG_HELP}")
    return path


def make_model(path: Path, arch: dict, seed: int = 0, name: str = "tiny") -> Path:
    """A randomly initialised model file: real nets, real file format, no training."""
    torch.manual_seed(seed)
    return save_model(build_net(arch), path, {"name": name, "arch": arch})


@pytest.fixture(scope="session")
def tiny_style(tmp_path_factory) -> Path:
    """A width-0.25 style net saved as a model file (random weights)."""
    return make_model(tmp_path_factory.mktemp("models") / "tiny.safetensors",
                      {"kind": "style", "norm": "instance", "upsample": "resize", "width": 0.25})


@pytest.fixture(scope="session")
def tiny_sr(tmp_path_factory) -> Path:
    """A width-0.25 x4 SR net saved as a model file (random weights)."""
    return make_model(tmp_path_factory.mktemp("models") / "tiny_sr.safetensors",
                      {"kind": "sr", "scale": 4, "norm": "batch", "upsample": "deconv", "width": 0.25})
