"""Model and training-state files. Nothing here unpickles code.

- A model file is safetensors: the net's tensors plus one metadata entry, ``rtstyle``, holding a
  JSON dict with at least ``arch`` (see ``nets.build_net``).
- A training state (for ``--resume``) is a ``torch.save`` dict of tensors, numbers and strings,
  read back with ``weights_only=True``.
"""
from __future__ import annotations

import json
import os
import pickle
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from rtstyle.errors import RtstyleError
from rtstyle.nets import build_net
from rtstyle.outputs import write_atomic


def save_model(net: nn.Module, path: str | os.PathLike, meta: dict, half: bool = False,
               overwrite: bool = False) -> Path:
    """Write ``net``'s weights (fp16 if ``half``) and ``meta`` as one safetensors file, whatever its
    name (``load_model`` decides by content); an existing file is replaced only with ``overwrite``."""
    path = Path(path)
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
             for k, v in net.state_dict().items()}
    write_atomic(path, lambda tmp: save_file(state, str(tmp), metadata={"rtstyle": json.dumps(meta)}), overwrite)
    return path


def read_meta(path: str | os.PathLike) -> dict:
    """The JSON metadata of a model file, without loading its tensors (a training state: its ``meta``)."""
    if Path(path).is_file() and not is_safetensors(Path(path)):
        meta = load_training_state(path)["meta"]
        if not isinstance(meta, dict):
            raise RtstyleError(f"{path} is not an rtstyle model file (no metadata)")
        return meta
    try:
        with safe_open(str(path), "pt") as f:
            return json.loads((f.metadata() or {})["rtstyle"])
    except (SafetensorError, OSError, KeyError, ValueError) as e:
        raise RtstyleError(f"{path} is not an rtstyle model file ({e.__class__.__name__}: {e})") from e


def load_model(path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """Build the net described by a model file (or a training state) and load its weights, in fp32 eval mode."""
    path = Path(path)
    if not path.is_file():
        raise RtstyleError(f"model file not found: {path}")
    if is_safetensors(path):
        meta = read_meta(path)
        try:
            state = load_file(str(path))
        except (SafetensorError, OSError) as e:
            raise RtstyleError(f"{path} is corrupt or truncated ({e})") from e
    else:
        training = load_training_state(path)
        state, meta = training["model"], training["meta"]
    try:
        net = build_net(meta["arch"])
        net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except (KeyError, ValueError, RuntimeError, TypeError) as e:
        raise RtstyleError(f"{path} does not match its recorded architecture: {str(e).splitlines()[0]}") from e
    bad = [k for k, v in net.state_dict().items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:  # a diverged training: its outputs would be NaN, written as a black video
        raise RtstyleError(f"{path} holds NaN or infinite weights ({len(bad)} tensors, e.g. {bad[0]}): "
                           "the training diverged; use an earlier state or retrain")
    return net.eval(), meta


def is_safetensors(path: Path) -> bool:
    """Decided by content, not by name: a safetensors file starts with its header's length (8 bytes,
    little-endian) and the header, a JSON object. (A training state is a zip, ``PK``, or a pickle.)"""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError as e:
        raise RtstyleError(f"cannot read model file {path}: {e.strerror or e}") from None
    if head[8:9] == b"{" and head[:2] != b"PK":
        return True
    if head[:2] == b"PK" or head[:1] == b"\x80":  # a zip (torch.save) or a pickle
        return False
    return path.suffix == ".safetensors"  # neither: damaged; read_meta says what is wrong


def save_training_state(path: str | os.PathLike, state: dict) -> Path:
    path = Path(path)
    write_atomic(path, lambda tmp: torch.save(state, tmp), overwrite=True)  # the run's own state, saved again and again
    return path


def load_training_state(path: str | os.PathLike) -> dict:
    """Read a ``--resume`` checkpoint. ``weights_only=True`` refuses any pickled code."""
    try:
        with warnings.catch_warnings():  # (torch warns about pickle protocols: the error below says it all)
            warnings.simplefilter("ignore")
            with open(path, "rb") as f:  # (a file object: torch.load would go by a .safetensors name, not content)
                state = torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # what weights_only raises for anything but tensors and plain data
        raise RtstyleError(f"cannot load checkpoint {path}: not a tensors-only checkpoint (pickled Python objects "
                           "or unknown data); refused, since unpickling it could run code") from e
    except Exception as e:  # RuntimeError/EOFError/zipfile errors for truncated or corrupt files
        first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise RtstyleError(f"cannot load checkpoint {path}: {first}") from e
    if not isinstance(state, dict) or "model" not in state or "meta" not in state:
        raise RtstyleError(f"{path} is not an rtstyle training checkpoint")
    return state
