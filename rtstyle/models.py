"""Finding and opening models: by name (the ones shipped in the package, then the user's own
trained ones) or by path, loaded once into an inference backend as a ``Model``.

A multi-style file (conditional instance norm) holds several styles; each is found by its own name
(``--style candy``), and ``--style candy:0.5,wave:0.5`` blends styles of one file by interpolating
their per-style scales and shifts. Either way the net that runs is a plain single-style net (the
blend baked in at load time), so every backend and export treats it like any other.
"""
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
from rtstyle.nets import bake, multiple_of

SHIPPED_DIR = Path(__file__).parent / "weights"
ENV_VAR = "RTSTYLE_MODELS"
# what `rtstyle upscale --scale S` runs: the shipped net that looked best in side-by-side crops
# (benchmarks/results/sr_x4_crops.png: the pixel net is as sharp as the feature net, and cleaner)
DEFAULT_SR = {4: "sr_x4_pixel", 8: "sr_x8_feat"}


def user_dir() -> Path:
    """Where ``rtstyle train`` puts finished models so that ``--style NAME`` finds them."""
    default = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "rtstyle" / "models"
    return Path(os.environ.get(ENV_VAR, default))


def search_dirs() -> list[Path]:
    return [SHIPPED_DIR, user_dir()]


def list_models(kind: str | None = None) -> list[tuple[str, Path, dict]]:
    """(name, path, metadata) of every model found, shipped first; a user's model shadows nothing.
    Each style of a multi-style file is listed under its own name, with the file's path."""
    seen, found = set(), []
    for folder in search_dirs():
        for path in sorted(folder.glob("*.safetensors")):
            try:
                meta = read_meta(path)
            except RtstyleError:
                continue
            if kind is not None and meta["arch"]["kind"] != kind:
                continue
            for name in meta["arch"].get("styles") or [path.stem]:
                if name not in seen:
                    seen.add(name)
                    found.append((name, path, meta))
    return found


def parse_blend(spec: str) -> list[tuple[str, float]]:
    """``candy:0.5,wave:0.5`` -> [("candy", 0.5), ("wave", 0.5)], weights normalised to sum to 1;
    a plain name is one style at weight 1.

    >>> parse_blend("candy:1,wave:3")
    [('candy', 0.25), ('wave', 0.75)]
    >>> parse_blend("muse")
    [('muse', 1.0)]
    """
    parts = []
    for item in spec.split(","):
        name, _, weight = item.strip().partition(":")
        try:
            w = float(weight) if weight else 1.0
        except ValueError:
            w = float("nan")
        if not name or not w > 0 or w == float("inf"):
            raise RtstyleError(f"a style blend is NAME:WEIGHT,NAME:WEIGHT with positive weights, not {spec!r}")
        parts.append((name, w))
    names = [n for n, _ in parts]
    if len(set(names)) != len(names):
        raise RtstyleError(f"style {spec!r} names a style twice")
    total = sum(w for _, w in parts)
    return [(n, w / total) for n, w in parts]


def _is_path(name_or_path: str) -> bool:
    return Path(name_or_path).suffix in (".safetensors", ".pt", ".pth", ".ckpt") or os.sep in name_or_path


def resolve(name_or_path: str, kind: str = "style") -> Path:
    """A model name (shipped or user-trained, or a style inside a multi-style file), a blend of
    styles of one file (``candy:0.5,wave:0.5``) or a path to a model file -> the file's path."""
    if _is_path(name_or_path):
        path = Path(name_or_path)
        if not path.is_file():
            raise RtstyleError(f"model file not found: {path}")
        return path
    blend = parse_blend(name_or_path) if ("," in name_or_path or ":" in name_or_path) else [(name_or_path, 1.0)]
    files = {path.stem: path for folder in reversed(search_dirs()) for path in folder.glob("*.safetensors")}
    files.update({n: path for n, path, _ in reversed(list_models())})  # a style's name wins over a file's
    missing = [n for n, _ in blend if n not in files]
    if missing and len(blend) == 1 and Path(name_or_path).is_file():
        return Path(name_or_path)  # a model file named without a known extension (e.g. `--out mymodel`)
    if missing:
        names = ", ".join(name for name, _, _ in list_models(kind)) or "none installed"
        raise RtstyleError(f"unknown {kind} model {missing[0]!r} (available: {names})")
    paths = {files[n] for n, _ in blend}
    if len(paths) > 1:
        raise RtstyleError(f"only styles of one multi-style model blend; {name_or_path!r} names styles of "
                           + " and ".join(sorted(p.name for p in paths)))
    return paths.pop()


def model_label(spec: str, path: Path) -> str:
    """What output file names call a model: the file's stem, or the style (blend) picked from a
    multi-style file (``candy:0.5,wave:0.5`` -> ``candy+wave``).

    >>> model_label("candy:0.5,wave:0.5", Path("zoo.safetensors"))
    'candy+wave'
    >>> model_label("models/muse.safetensors", Path("models/muse.safetensors"))
    'muse'
    """
    return path.stem if _is_path(spec) else "+".join(n for n, _ in parse_blend(spec))


def select_style(net: nn.Module, meta: dict, spec: str, path: Path) -> tuple[nn.Module, dict]:
    """A multi-style net and card -> the single-style net and card for ``spec`` (a style name or blend)."""
    styles = meta["arch"]["styles"]
    if _is_path(spec) or spec == path.stem and spec not in styles:
        raise RtstyleError(f"{path.name} holds {len(styles)} styles; pick one by name ({', '.join(styles)}) "
                           f"or blend them, e.g. {styles[0]}:0.5,{styles[-1]}:0.5")
    blend = parse_blend(spec)
    unknown = [n for n, _ in blend if n not in styles]
    if unknown:
        raise RtstyleError(f"{path.name} has no style {unknown[0]!r} (it has {', '.join(styles)})")
    mix = torch.zeros(len(styles))
    for n, w in blend:
        mix[styles.index(n)] = w
    arch = {k: v for k, v in meta["arch"].items() if k != "styles"}
    name = blend[0][0] if len(blend) == 1 else "+".join(f"{n}{w:.2g}" for n, w in blend)
    card = {**meta, "name": name, "arch": arch, "multi_style": {"file": path.name, "blend": dict(blend)}}
    images = dict(zip(styles, meta.get("style_images", [])))
    card.pop("style_images", None)
    if len(blend) == 1 and blend[0][0] in images:
        card["style_image"] = images[blend[0][0]]
    if "style_norms" in meta:
        card["style_norms"] = {n: meta["style_norms"][n] for n, _ in blend if n in meta["style_norms"]}
    return bake(net, meta["arch"], mix), card


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
               device: str | torch.device | None = None, precision: str = "fp32", frames: int | None = None) -> Model:
    """Resolve, load and check a model, and wrap it in ``backend`` (``None``: no backend, the net only).

    ``kind`` is the kind the caller needs ("style", "sr"), or None for either; ``frames``, how many
    frames the job will run if known (``auto`` skips the export and probe for a few)."""
    path = resolve(name_or_path, kind or "style")
    net, meta = load_model(path)
    if kind is not None and meta["arch"]["kind"] != kind:
        raise RtstyleError(f"{path} is a {meta['arch']['kind']} model, not a {kind} model")
    if meta["arch"].get("styles"):
        net, meta = select_style(net, meta, name_or_path, path)
    meta.setdefault("name", path.stem)
    runner = load_backend(net, meta, backend, device, precision, frames) if backend else None
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
