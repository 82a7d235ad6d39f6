"""Finding and opening models: by name (the ones shipped in the package, then the user's own
trained ones) or by path, loaded once into an inference backend as a ``Model``."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from rtstyle.backends import Backend, load_backend
from rtstyle.checkpoint import load_model, read_meta, save_model
from rtstyle.errors import RtstyleError
from rtstyle.nets import multiple_of

SHIPPED_DIR = Path(__file__).parent / "weights"
ENV_VAR = "RTSTYLE_MODELS"


def user_dir() -> Path:
    """Where ``rtstyle train`` puts finished models so that ``--style NAME`` finds them."""
    default = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "rtstyle" / "models"
    return Path(os.environ.get(ENV_VAR, default))


def search_dirs() -> list[Path]:
    return [SHIPPED_DIR, user_dir()]


def list_models(kind: str | None = None) -> list[tuple[str, Path, dict]]:
    """(name, path, metadata) of every model found, shipped first; a user's model shadows nothing."""
    seen, found = set(), []
    for folder in search_dirs():
        for path in sorted(folder.glob("*.safetensors")):
            if path.stem in seen:
                continue
            try:
                meta = read_meta(path)
            except RtstyleError:
                continue
            if kind is None or meta["arch"]["kind"] == kind:
                seen.add(path.stem)
                found.append((path.stem, path, meta))
    return found


def resolve(name_or_path: str, kind: str = "style") -> Path:
    """A model name (shipped or user-trained) or a path to a model file -> the file's path."""
    path = Path(name_or_path)
    if path.suffix in (".safetensors", ".pt", ".pth", ".ckpt") or os.sep in name_or_path:
        if not path.is_file():
            raise RtstyleError(f"model file not found: {path}")
        return path
    for folder in search_dirs():
        candidate = folder / f"{name_or_path}.safetensors"
        if candidate.is_file():
            return candidate
    if path.is_file():  # a model file named without a known extension (e.g. `--out mymodel`)
        return path
    names = ", ".join(name for name, _, _ in list_models(kind)) or "none installed"
    raise RtstyleError(f"unknown {kind} model {name_or_path!r} (available: {names})")


@dataclass
class Model:
    """A model opened once: its net in an inference backend, and what callers ask of it."""

    backend: Backend | None   # None when opened without one (``rtstyle export`` needs only the net)
    meta: dict                # the model card (``arch``, ``recipe``, ...)
    name: str                 # the card's name, else the file's stem
    kind: str                 # "style" or "sr"
    scale: int                # output size / input size: 1 for style nets
    multiple: int             # inputs are padded to a multiple of this
    net: nn.Module | None = None
    path: Path | None = None

    @classmethod
    def wrap(cls, backend: Backend | None, meta: dict, net: nn.Module | None = None,
             path: Path | None = None) -> Model:
        """A ``Model`` around a backend (or any callable with ``device``) and its metadata."""
        arch = meta["arch"]
        name = meta.get("name") or (path.stem if path else "model")
        return cls(backend, meta, name, arch["kind"], arch.get("scale", 1) if arch["kind"] == "sr" else 1,
                   multiple_of(arch), net, path)


def open_model(name_or_path: str, kind: str | None = "style", backend: str | None = "auto",
               device: str | torch.device | None = None, precision: str = "fp32") -> Model:
    """Resolve, load and check a model, and wrap it in ``backend`` (``None``: no backend, the net only).

    ``kind`` is the kind the caller needs ("style", "sr"), or None for either."""
    path = resolve(name_or_path, kind or "style")
    net, meta = load_model(path)
    if kind is not None and meta["arch"]["kind"] != kind:
        raise RtstyleError(f"{path} is a {meta['arch']['kind']} model, not a {kind} model")
    meta.setdefault("name", path.stem)
    runner = load_backend(net, meta, backend, device, precision) if backend else None
    return Model.wrap(runner, meta, net, path)


def load(name_or_path: str, kind: str = "style") -> tuple[nn.Module, dict]:
    """Load a model's net and metadata by name or path and check it is of the expected kind."""
    model = open_model(name_or_path, kind, backend=None)
    return model.net, model.meta


PATH_FIELDS = ("data", "style_image", "init")


def without_paths(meta: dict) -> dict:
    """The model card with this machine's paths (training data, style image, starting model) cut to
    their last component: a shipped card names its inputs, not where they lay.

    >>> without_paths({"data": "/work/shared/data/train", "recipe": {"init": "runs/a.safetensors", "lr": 1e-3}})
    {'data': 'train', 'recipe': {'init': 'a.safetensors', 'lr': 0.001}}
    """
    def cut(d: dict) -> dict:
        return {k: Path(v).name if k in PATH_FIELDS and isinstance(v, str) else v for k, v in d.items()}
    meta = cut(meta)
    if isinstance(meta.get("recipe"), dict):
        meta["recipe"] = cut(meta["recipe"])
    return meta


def ship(src: str | os.PathLike, dest_dir: Path = SHIPPED_DIR) -> Path:
    """Copy a trained model into the package as fp16 weights plus a JSON model card beside it."""
    net, meta = load_model(src)
    meta = without_paths(meta)
    dest = save_model(net, dest_dir / f"{meta['name']}.safetensors", meta, half=True, overwrite=True)
    card = {"name": meta["name"], "file": dest.name, "weights": "fp16 safetensors", **meta}
    dest.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    return dest
