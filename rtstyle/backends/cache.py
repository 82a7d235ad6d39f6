"""The engine folder: where exported ONNX files, TensorRT engines and the CPU backend choice are cached.

Every cached file is keyed by ``model_hash`` (the weights and architecture), so a retrained model
never runs through a stale export.
"""
from __future__ import annotations

import atexit
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import torch
from torch import nn

from rtstyle.errors import say
from rtstyle.outputs import write_atomic

ENGINE_DIR_ENV = "RTSTYLE_ENGINE_DIR"
CPU_CHOICE_FILE = "cpu-backend.json"


def configured_engine_dir() -> Path:
    """Where exported ONNX files, engines and CPU measurements are meant to be cached.

    $RTSTYLE_ENGINE_DIR if set; else the checkout's ``engines/`` folder when rtstyle runs from a
    source tree (it is git-ignored); else, for an installed package, ~/.cache/rtstyle/engines.
    """
    if os.environ.get(ENGINE_DIR_ENV):
        return Path(os.environ[ENGINE_DIR_ENV])
    checkout = Path(__file__).resolve().parents[2] / "engines"
    if (checkout / "README.md").is_file() and os.access(checkout, os.W_OK):
        return checkout
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rtstyle" / "engines"


_STAND_INS: dict[Path, Path] = {}


def engine_dir() -> Path:
    """The engine folder, made if needed; if it cannot be (read-only, a file in the way, no
    permission), a temporary folder for this run, said once: a cache that cannot be written costs
    an export, not the run."""
    wanted = configured_engine_dir()
    if wanted in _STAND_INS:
        return _STAND_INS[wanted]
    try:
        wanted.mkdir(parents=True, exist_ok=True)
        if os.access(wanted, os.W_OK | os.X_OK):
            return wanted
        why = "permission denied"
    except OSError as e:
        why = (e.strerror or str(e)).lower()
    stand_in = _STAND_INS[wanted] = Path(tempfile.mkdtemp(prefix="rtstyle-engines-"))
    atexit.register(shutil.rmtree, stand_in, ignore_errors=True)
    say(f"warning: engine folder {wanted} cannot be written ({why}); caching in {stand_in} for this run only "
        f"(set ${ENGINE_DIR_ENV} to a writable folder)")
    return stand_in


def model_hash(net: nn.Module, meta: dict) -> str:
    """12 hex digits identifying the weights and architecture (not the file they came from)."""
    h = hashlib.sha256(json.dumps(meta["arch"], sort_keys=True).encode())
    for name, t in sorted(net.state_dict().items()):
        t = t.detach().to("cpu", torch.float32 if t.is_floating_point() else t.dtype).contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:12]


def slug(text: str) -> str:
    """A file-name-safe form of a model or GPU name."""
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-") or "model"


def cached_stem(net: nn.Module, meta: dict) -> str:
    """``<name>-<model hash>``: how every cached file of this model begins."""
    return f"{slug(meta.get('name', 'model'))}-{model_hash(net, meta)}"


def write_bytes(dest: Path, data: bytes) -> None:
    """Write a cache file (or an export the caller has checked): replacing one is always safe, the
    content is the same for the same name."""
    write_atomic(dest, lambda tmp: tmp.write_bytes(data), overwrite=True)


def read_cpu_choices() -> dict:
    """The remembered CPU measurements {key: {backend: ms}}; a damaged or hand-edited file reads as empty."""
    try:
        known = json.loads((engine_dir() / CPU_CHOICE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def cpu_choice(known: dict, key: str, names: set[str] | frozenset[str] = frozenset({"torch", "onnxruntime"})
               ) -> dict[str, float] | None:
    """The measurement remembered under ``key`` of the backends ``names``, if it is complete and well-formed."""
    ms = known.get(key)
    if isinstance(ms, dict) and names <= set(ms) and all(isinstance(ms[n], (int, float)) for n in names):
        return {n: ms[n] for n in sorted(names)}
    return None


def remember_cpu_choices(known: dict) -> str:
    """Write the measurements; says where, or why not (a read-only or full folder costs a
    measurement next time, not this run)."""
    path = engine_dir() / CPU_CHOICE_FILE
    try:
        write_atomic(path, lambda tmp: tmp.write_text(json.dumps(known, indent=1)), overwrite=True)
        return f"remembered in {path}"
    except OSError as e:
        return f"not remembered: {e.strerror or e}"
