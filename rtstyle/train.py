"""Training transform nets with perceptual losses (Johnson et al. 2016, section 3).

A recipe (``StyleRecipe``, ``SRRecipe``) says what to train; its fields are what the model card
records. One loop (``fit``) serves both tasks; what differs is the data and the loss, given as a
function of a batch. Under ``torchrun`` it runs data-parallel (DistributedDataParallel; rank 0
logs and saves).
"""
from __future__ import annotations

import datetime
import math
import os
import platform
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, RandomSampler

from rtstyle import checkpoint, losses, models
from rtstyle.backends import resolve_device
from rtstyle.data import ImageFolder, worker_init
from rtstyle.errors import RtstyleError, progress as progress_bar, say
from rtstyle.imageio import IMAGE_EXTS
from rtstyle.nets import NORMS, UPSAMPLES, build_net
from rtstyle.outputs import same_file
from rtstyle.vgg import STYLE_LAYERS, load_vgg16


@dataclass
class StyleRecipe:
    """How a style transfer net is trained (paper sections 3.1 and 4.1)."""

    style_image: str
    data: str                              # folder of training photos
    name: str
    iterations: int = 40000                # paper: 40,000
    batch_size: int = 4                    # per process under torchrun
    image_size: int = 256                  # training crop size
    style_size: int | None = 512           # the style image's longer side
    content_weight: float = losses.CONTENT_WEIGHT
    style_weight: float = losses.STYLE_WEIGHT
    tv_weight: float = losses.TV_WEIGHT
    lr: float = 1e-3
    norm: str = "instance"                 # instance (Ulyanov et al.) or batch (paper)
    upsample: str = "resize"               # resize (no checkerboard) or deconv (paper)
    width: float = 1.0                     # channel width multiplier
    seed: int = 0
    amp: bool = True                       # bf16 mixed precision where native
    content_layer: str = "relu3_3"
    style_layers: tuple[str, ...] = STYLE_LAYERS
    optimizer: str = "Adam"

    def arch(self) -> dict:
        return {"kind": "style", "norm": self.norm, "upsample": self.upsample, "width": self.width}


@dataclass
class SRRecipe:
    """How a super-resolution net is trained (paper section 4.2, with the changes that make a CPU budget work).

    The loss is ``feat_weight * l_feat(relu2_2)`` (``loss="feat"``) plus ``pixel_weight * l_pixel``
    (default 1 for ``loss="pixel"``, 0 for ``"feat"``) plus ``tv_weight * l_TV``.
    """

    data: str
    name: str
    scale: int = 4                         # 4 or 8
    loss: str = "feat"                     # feat (relu2_2 feature loss) or pixel
    iterations: int = 200000               # paper: 200,000
    batch_size: int = 4
    patch_size: int = 288                  # high-resolution patch size (paper: 288)
    feat_weight: float = 1.0
    pixel_weight: float | None = None      # None: 1 for the pixel loss, 0 for the feature loss
    tv_weight: float = 0.0
    lr: float = 1e-3
    lr_decay: str = "none"                 # none or cosine (to 0 at the last step)
    norm: str = "batch"
    upsample: str = "resize"               # resize (no checkerboard) or deconv (paper)
    width: float = 1.0
    residual: bool = False                 # add the bicubic upsampling to the output (not in the paper)
    taper: bool = False                    # halve the channels at each upsampling (not in the paper)
    blur: float = 0.0                      # Gaussian sigma before MATLAB bicubic x1/scale (paper: 1.0)
    init: str | None = None                # start from this SR model's weights (same architecture)
    seed: int = 0
    amp: bool = True
    optimizer: str = "Adam"

    def __post_init__(self):
        if self.scale not in (4, 8):
            raise RtstyleError(f"--scale must be 4 or 8, not {self.scale}")
        if self.loss not in ("feat", "pixel"):
            raise RtstyleError(f"--loss must be feat or pixel, not {self.loss!r}")
        if self.lr_decay not in LR_DECAYS:
            raise RtstyleError(f"--lr-decay must be one of {', '.join(LR_DECAYS)}, not {self.lr_decay!r}")
        if self.blur < 0:
            raise RtstyleError(f"--blur must be >= 0, not {self.blur}")
        if self.norm not in NORMS or self.upsample not in UPSAMPLES:
            raise RtstyleError(f"--norm must be one of {', '.join(NORMS)} and --upsample one of "
                               f"{', '.join(UPSAMPLES)}, not {self.norm!r} / {self.upsample!r}")
        if self.pixel_weight is None:
            self.pixel_weight = 1.0 if self.loss == "pixel" else 0.0

    def arch(self) -> dict:
        return {"kind": "sr", "scale": self.scale, "norm": self.norm, "upsample": self.upsample, "width": self.width,
                "residual": self.residual, "taper": self.taper}


LR_DECAYS = ("none", "cosine")


def lr_factor(step: int, iterations: int, decay: str) -> float:
    """The learning rate at ``step`` as a fraction of the initial one (a function of the step alone,
    so that ``--resume`` continues the schedule).

    >>> [round(lr_factor(s, 4, "cosine"), 3) for s in range(4)]
    [1.0, 0.854, 0.5, 0.146]
    >>> lr_factor(3, 4, "none")
    1.0
    """
    if decay == "cosine":
        return 0.5 * (1 + math.cos(math.pi * step / iterations))
    return 1.0


def _distributed() -> tuple[int, int]:
    """(rank, world size), initialising the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _device(device: str | None, rank: int) -> torch.device:
    if device:
        return resolve_device(device)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count())
    return torch.device("cpu")


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 mixed precision on CUDA, and on CPUs with native bf16 (AVX512-BF16/AMX: ~2x faster
    steps measured here); None where it would only emulate."""
    if device.type == "cuda":
        return torch.bfloat16
    if device.type == "cpu" and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return torch.bfloat16
    return None


def _batches(dataset: ImageFolder, batch_size: int, workers: int, seed: int):
    """An endless stream of random batches (sampling with replacement across epochs)."""
    gen = torch.Generator().manual_seed(seed)
    sampler = RandomSampler(dataset, replacement=True, num_samples=10 ** 9, generator=gen)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                        worker_init_fn=worker_init if workers else None, drop_last=True,
                        pin_memory=torch.cuda.is_available(), persistent_workers=workers > 0)
    yield from loader


def style_objective(vgg: nn.Module, grams_s: list[torch.Tensor], content_weight: float, style_weight: float,
                    tv_weight: float) -> Callable:
    """``loss_fn(net, x)`` for style training: the net's output against the batch x and the style's Grams."""
    def loss_fn(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
        y_hat = model(x)
        with torch.no_grad():
            content_target = vgg(x)["relu3_3"]
        return losses.style_transfer_loss(y_hat, vgg(y_hat), content_target, grams_s,
                                          content_weight, style_weight, tv_weight)
    return loss_fn


def sr_objective(vgg: nn.Module | None, feat_weight: float, pixel_weight: float, tv_weight: float) -> Callable:
    """``loss_fn(net, (lr, hr))`` for SR: the feature loss at relu2_2 when ``vgg`` is given, plus the pixel loss."""
    def loss_fn(model: nn.Module, batch: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        lr_img, hr = batch
        y_hat = model(lr_img)
        terms = {"pixel": losses.pixel_loss(y_hat.float(), hr), "tv": losses.tv_loss(y_hat.float())}
        total = pixel_weight * terms["pixel"] + tv_weight * terms["tv"]
        if vgg is not None:
            with torch.no_grad():
                target = vgg(hr)["relu2_2"]
            terms["feat"] = losses.feature_loss(vgg(y_hat)["relu2_2"].float(), target.float())
            total = total + feat_weight * terms["feat"]
        return {"total": total, **terms}
    return loss_fn


def fit(net: nn.Module, loss_fn: Callable, batches, *, iterations: int, lr: float, state_path: Path,
        meta: dict, resume: bool, checkpoint_every: int, device: torch.device, rank: int, world: int,
        mixed_precision: bool = True, lr_decay: str = "none") -> dict:
    """The training loop: Adam, bf16 mixed precision where native, checkpoints, resume, a progress bar.

    ``loss_fn(net, batch) -> {name: loss}`` must include ``total``. Returns the final losses
    (mean of the last 50 steps).
    """
    net.to(device)
    if device.type == "cuda":
        net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    amp = autocast_dtype(device) if mixed_precision else None
    meta["recipe"]["mixed_precision"] = str(amp).replace("torch.", "") if amp else "fp32"
    start = 0
    if resume and state_path.is_file():
        state = checkpoint.load_training_state(state_path)
        if state["meta"].get("arch") != meta["arch"]:
            raise RtstyleError(f"{state_path} was trained with another architecture; drop --resume or change --name")
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["step"])
    model = nn.parallel.DistributedDataParallel(net) if world > 1 else net
    recent: dict[str, list[float]] = {}
    bar = progress_bar(range(start, iterations), initial=start, total=iterations, disable=rank != 0,
               unit="it", dynamic_ncols=True, desc=meta["name"])
    model.train()

    def save(step: int) -> None:
        if rank == 0:
            checkpoint.save_training_state(state_path, {
                "model": net.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "meta": meta})

    step = start
    try:
        for step in bar:
            for group in optimizer.param_groups:
                group["lr"] = lr * lr_factor(step, iterations, lr_decay)
            batch = next(batches)
            batch = [b.to(device, non_blocking=True) for b in batch] if isinstance(batch, list) else batch.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                terms = loss_fn(model, batch)
            optimizer.zero_grad(set_to_none=True)
            terms["total"].backward()
            optimizer.step()
            for k, v in terms.items():
                recent.setdefault(k, []).append(float(v.detach()))
                recent[k] = recent[k][-50:]
            if rank == 0 and (step % 10 == 0 or step == iterations - 1):
                bar.set_postfix({k: f"{sum(v) / len(v):.4g}" for k, v in recent.items()})
            if checkpoint_every and (step + 1) % checkpoint_every == 0 and step + 1 < iterations:
                save(step + 1)
                if rank == 0 and bar.disable:  # no bar (a log file, --no-progress): one line per checkpoint
                    say(f"{meta['name']}: step {step + 1}/{iterations}, "
                        + ", ".join(f"{k} {sum(v) / len(v):.4g}" for k, v in recent.items()))
        step = iterations
    except KeyboardInterrupt:
        save(step)
        if rank == 0:
            bar.close()
            print(f"interrupted at step {step}; state saved to {state_path}, continue with --resume")
        raise
    save(step)
    bar.close()
    return {k: sum(v) / len(v) for k, v in recent.items()}


def _finish(net: nn.Module, meta: dict, final: dict, out: Path, started: float, device: torch.device,
            rank: int) -> Path | None:
    if rank != 0:
        return None
    meta.update(
        final_losses=final,
        train_seconds=round(time.time() - started, 1),
        hardware=torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)",
        date=datetime.date.today().isoformat(),
        torch=torch.__version__,
    )
    path = checkpoint.save_model(net, out, meta, overwrite=True)  # checked before training (check_run)
    print(f"saved {path}")
    return path


def _setup(name: str, out: str | None, seed: int, device: str | None):
    rank, world = _distributed()
    dev = _device(device, rank)
    random.seed(seed + rank)
    torch.manual_seed(seed)  # same initial weights on every rank (DDP also broadcasts rank 0's)
    out_path = Path(out) if out else models.user_dir() / f"{name}.safetensors"
    state_path = out_path.with_suffix(".state.pt")
    return rank, world, dev, out_path, state_path


def _style_task(r: StyleRecipe, vgg_weights: str | None, dev: torch.device, rank: int):
    """(dataset, loss_fn, VGG-16 hash) for style training."""
    dataset = ImageFolder(r.data, r.image_size, "style", seed=r.seed + rank)
    style = losses.load_style_target(r.style_image, r.style_size).to(dev)
    vgg = load_vgg16(vgg_weights, STYLE_LAYERS, dev)
    if dev.type == "cuda":
        vgg.to(memory_format=torch.channels_last)
    with torch.no_grad():
        grams_s = [losses.gram(f) for f in vgg(style).values()]
    return dataset, style_objective(vgg, grams_s, r.content_weight, r.style_weight, r.tv_weight), vgg.weights_hash


def _sr_task(r: SRRecipe, vgg_weights: str | None, dev: torch.device, rank: int):
    """(dataset, loss_fn, VGG-16 hash or None) for super-resolution training."""
    dataset = ImageFolder(r.data, r.patch_size, "sr", scale=r.scale, seed=r.seed + rank, blur=r.blur)
    vgg = load_vgg16(vgg_weights, ("relu2_2",), dev) if r.loss == "feat" else None
    loss_fn = sr_objective(vgg, r.feat_weight, r.pixel_weight, r.tv_weight)
    return dataset, loss_fn, vgg.weights_hash if vgg is not None else None


def _init_from(net: nn.Module, recipe: StyleRecipe | SRRecipe) -> None:
    """Start from another model's weights (``SRRecipe.init``), which must have the same architecture."""
    init = getattr(recipe, "init", None)
    if not init:
        return
    src, meta = checkpoint.load_model(init)
    if meta["arch"] != recipe.arch():
        raise RtstyleError(f"--init {init}: its architecture {meta['arch']} differs from this recipe's {recipe.arch()}")
    net.load_state_dict(src.state_dict())


def model_card(recipe: StyleRecipe | SRRecipe, world: int, vgg_hash: str | None) -> dict:
    """What a trained model records about itself: the recipe as given (batch size summed over processes)."""
    meta = {"name": recipe.name, "arch": recipe.arch()}
    if isinstance(recipe, StyleRecipe):
        meta["style_image"] = Path(recipe.style_image).name
    meta["data"] = str(recipe.data)
    meta["recipe"] = {**asdict(recipe), "batch_size": recipe.batch_size * world, "world_size": world}
    meta["vgg16_sha256"] = vgg_hash
    return meta


def check_run(recipe: StyleRecipe | SRRecipe, out_path: Path, state_path: Path, resume: bool, overwrite: bool,
              checkpoint_every: int, workers: int, vgg_weights: str | None) -> None:
    """Everything that would fail only after training, refused before it: counts, and the files
    written (never an input, never a folder, an existing model only with --overwrite or --resume)."""
    for option, value, least in (("--iterations", recipe.iterations, 1), ("--batch-size", recipe.batch_size, 1),
                                 ("--checkpoint-every", checkpoint_every, 0), ("--workers", workers, 0)):
        if value < least:
            raise RtstyleError(f"{option} must be at least {least}, not {value}")
    if not recipe.lr > 0:
        raise RtstyleError(f"--lr must be positive, not {recipe.lr}")
    inputs = [p for p in (getattr(recipe, "style_image", None), getattr(recipe, "init", None), vgg_weights) if p]
    for path in (out_path, state_path):
        if path.suffix.lower() in IMAGE_EXTS:
            raise RtstyleError(f"--out {out_path} names an image; a model file ends in .safetensors")
        if path.is_dir():
            raise RtstyleError(f"--out {path} is a directory; name the model file, e.g. {path / recipe.name}.safetensors")
        if any(same_file(Path(src), path) for src in inputs):
            raise RtstyleError(f"--out {out_path} would write {path}, an input of this run; choose another --out")
    if out_path.exists() and not (overwrite or resume):
        raise RtstyleError(f"--out {out_path} exists; pass --overwrite to replace it (or --resume to continue it)")


def train(recipe: StyleRecipe | SRRecipe, *, out: str | None = None, resume: bool = False,
          checkpoint_every: int = 1000, vgg_weights: str | None = None, workers: int = 2,
          device: str | None = None, overwrite: bool = False) -> Path | None:
    """Train the net ``recipe`` describes and save it to ``out`` (default: the user model folder)."""
    started = time.time()
    rank, world, dev, out_path, state_path = _setup(recipe.name, out, recipe.seed, device)
    check_run(recipe, out_path, state_path, resume, overwrite, checkpoint_every, workers, vgg_weights)
    if rank == 0:
        if out is None:
            out_path.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(out_path.parent, os.W_OK | os.X_OK):
            raise RtstyleError(f"--out {out_path}: cannot write to the folder {out_path.parent}")
    task = _style_task if isinstance(recipe, StyleRecipe) else _sr_task
    dataset, loss_fn, vgg_hash = task(recipe, vgg_weights, dev, rank)
    net = build_net(recipe.arch())  # after the VGG-16: its construction draws from the same seeded generator
    _init_from(net, recipe)
    meta = model_card(recipe, world, vgg_hash)
    batches = _batches(dataset, recipe.batch_size, workers, recipe.seed + 1000 * rank)
    final = fit(net, loss_fn, batches, iterations=recipe.iterations, lr=recipe.lr, state_path=state_path, meta=meta,
                resume=resume, checkpoint_every=checkpoint_every, device=dev, rank=rank, world=world,
                mixed_precision=recipe.amp, lr_decay=getattr(recipe, "lr_decay", "none"))
    return _finish(net, meta, final, out_path, started, dev, rank)


RUN_OPTIONS = ("out", "resume", "checkpoint_every", "vgg_weights", "workers", "device", "overwrite")


def _run(recipe_type: type, options: dict, **given) -> Path | None:
    recipe = recipe_type(**given, **{k: v for k, v in options.items() if k not in RUN_OPTIONS})
    return train(recipe, **{k: v for k, v in options.items() if k in RUN_OPTIONS})


def train_style(style_image: str, data: str, name: str, **options) -> Path | None:
    """Train a style transfer net on photos under ``data`` in the style of ``style_image``;
    ``options`` are ``StyleRecipe`` fields and ``train``'s keyword arguments."""
    return _run(StyleRecipe, options, style_image=style_image, data=data, name=name)


def train_sr(data: str, name: str, **options) -> Path | None:
    """Train a x4 or x8 super-resolution net; ``options`` as for ``train_style``, with ``SRRecipe`` fields."""
    return _run(SRRecipe, options, data=data, name=name)
