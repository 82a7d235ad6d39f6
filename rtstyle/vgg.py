"""The frozen VGG-16 loss network (Simonyan & Zisserman 2015), written here so torchvision is not needed.

Weights use torchvision's layout (``features.N.weight``, or ``N.weight`` for a features-only
file) and its input convention: RGB in [0, 1], normalised with the ImageNet mean and std.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from torch import nn

from rtstyle.errors import RtstyleError

VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
ENV_VAR = "RTSTYLE_VGG16"
# Index of each ReLU output in torchvision's ``vgg16().features`` Sequential.
LAYERS = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22}
STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def _features(last: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    c = 3
    for v in _CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=True)]
            c = v
    return nn.Sequential(*layers[: last + 1])


class VGG16Features(nn.Module):
    """VGG-16 truncated after the deepest requested layer; returns {layer name: activation}."""

    def __init__(self, layers: tuple[str, ...] = STYLE_LAYERS):
        super().__init__()
        self.layers = {LAYERS[name]: name for name in layers}
        self.features = _features(max(self.layers))
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        out = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.layers:
                out[self.layers[i]] = x
        return out


def _normalise_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Accept a full torchvision VGG-16 file (``features.N.*``, ``classifier.*``) or a features-only one."""
    if any(k.startswith("features.") for k in state):
        return {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    return dict(state)


def content_hash(state: dict[str, torch.Tensor]) -> str:
    """sha256 over each key then its fp32 bytes, in key order: independent of the file container.

    For the shared weights this is the MANIFEST's content hash; a full torchvision file gives the
    same value, since only the conv weights (features) are hashed.
    """
    h = hashlib.sha256()
    for key, tensor in _normalise_keys(state).items():
        h.update(key.encode())
        h.update(tensor.detach().to(torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def hub_cache_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(VGG16_URL).name


def load_state(path: str | os.PathLike | None = None) -> tuple[dict[str, torch.Tensor], str]:
    """Find VGG-16 weights: explicit path, then $RTSTYLE_VGG16, then the torch hub cache, then download.

    Returns the features state dict and where it came from. Never unpickles code (weights_only).
    """
    path = path or os.environ.get(ENV_VAR)
    if path:
        path = Path(path)
        if not path.is_file():
            raise RtstyleError(f"VGG-16 weights not found at {path}")
        source = str(path)
    elif hub_cache_path().is_file():
        path, source = hub_cache_path(), str(hub_cache_path())
    else:
        source = VGG16_URL
    try:
        if path:
            state = torch.load(path, map_location="cpu", weights_only=True)
        else:
            state = torch.hub.load_state_dict_from_url(VGG16_URL, map_location="cpu", weights_only=True, progress=True)
    except RtstyleError:
        raise
    except Exception as e:  # a corrupt file or no network: one clear line, not a traceback
        raise RtstyleError(
            f"cannot load VGG-16 weights from {source}: {e}. Pass --vgg-weights PATH or set ${ENV_VAR}"
        ) from e
    if not isinstance(state, dict):
        raise RtstyleError(f"{source} does not hold a VGG-16 state dict")
    return _normalise_keys(state), source


def load_vgg16(path: str | os.PathLike | None = None, layers: tuple[str, ...] = STYLE_LAYERS,
               device: torch.device | str = "cpu") -> VGG16Features:
    """The frozen loss network, in eval mode, with the real ImageNet weights."""
    state, source = load_state(path)
    net = VGG16Features(layers)
    wanted = net.features.state_dict().keys()
    missing = [k for k in wanted if k not in state]
    if missing:
        raise RtstyleError(f"{source} is not a VGG-16 features file (missing {missing[0]})")
    net.features.load_state_dict({k: state[k] for k in wanted})
    net.weights_hash = content_hash(state)
    net.weights_source = source
    net.requires_grad_(False)
    return net.eval().to(device)
