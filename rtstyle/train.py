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
from rtstyle.data import ImageFolder, resize_short_side, worker_init
from rtstyle.errors import RtstyleError, progress as progress_bar, say
from rtstyle.imageio import IMAGE_EXTS, list_images, read_image, to_tensor
from rtstyle.interrupt import Interruption, graceful
from rtstyle.nets import NORMS, UPSAMPLES, build_net, one_hot
from rtstyle.outputs import same_file
from rtstyle.vgg import STYLE_LAYERS, load_vgg16


@dataclass
class StyleRecipe:
    """How a style transfer net is trained (paper sections 3.1 and 4.1).

    Several style images train one multi-style net (conditional instance norm, Dumoulin et al.
    2017): each training image gets a random one of them. ``balanced`` divides each Gram layer's
    distance by the mean distance of unchanged training photos to that painting at that layer, so
    one ``style_weight`` serves every painting. ``temporal_weight`` > 0 adds Wang et al.'s (2020)
    compound regularisation for stable video.
    """

    style_image: str | tuple[str, ...]     # one style image, or several for a multi-style net
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
    edge_kernel: int = 9                   # first and last conv's kernel (paper: 9)
    balanced: str = ""                     # "" (paper's plain sum), "layer" or "total": see photo_norms
    temporal_weight: float = 0.0           # compound regularisation weight (0: off)
    temporal_noise: float = 0.02           # std of the Gaussian noise added to the warped input
    add_to: str | None = None              # a multi-style model to add these styles to (see add_style)
    seed: int = 0
    amp: bool = True                       # bf16 mixed precision where native
    content_layer: str = "relu3_3"
    style_layers: tuple[str, ...] = STYLE_LAYERS
    optimizer: str = "Adam"

    def __post_init__(self):
        if not isinstance(self.style_image, str):
            self.style_image = tuple(str(p) for p in self.style_image)
            names = self.style_names()
            if len(set(names)) != len(names):
                raise RtstyleError(f"style images need distinct file names (they name the styles): {', '.join(names)}")
        self.balanced = {True: "layer", False: "", None: ""}.get(self.balanced, self.balanced)  # cards before "total" said True
        if self.balanced not in BALANCING:
            raise RtstyleError(f"balanced must be one of layer, total (or off), not {self.balanced!r}")

    def style_images(self) -> list[str]:
        return [self.style_image] if isinstance(self.style_image, str) else list(self.style_image)

    def style_names(self) -> list[str]:
        return [Path(p).stem for p in self.style_images()]

    def arch(self) -> dict:
        arch = {"kind": "style", "norm": self.norm, "upsample": self.upsample, "width": self.width}
        if self.edge_kernel != 9:  # (absent = the paper's 9, as in models trained before the option)
            arch["edge_kernel"] = self.edge_kernel
        if not isinstance(self.style_image, str):
            arch["styles"] = self.style_names()
        return arch


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
BALANCING = ("", "layer", "total")


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
    """bf16 mixed precision on CUDA, and on CPUs with AMX tiles (~2x faster steps measured on one);
    None elsewhere: with AVX512-BF16 but no AMX, bf16 autocast measured 1.3x *slower* than fp32
    (4.07 vs 3.04 s per width-0.25 256 px batch-4 step), and without either it only emulates."""
    if device.type == "cuda":
        return torch.bfloat16
    if device.type == "cpu" and cpu_has_amx() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return torch.bfloat16
    return None


def cpu_has_amx(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU has AMX bf16 tiles (Linux's ``amx_bf16`` flag; False where it cannot be read)."""
    try:
        with open(cpuinfo) as f:
            return any(line.startswith("flags") and " amx_bf16" in line for line in f)
    except OSError:
        return False


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


def multi_style_objective(vgg: nn.Module, grams_s: list[torch.Tensor], norms: torch.Tensor | None, r: StyleRecipe,
                          multi: bool, offset: int = 0, slots: int | None = None) -> Callable:
    """``loss_fn(net, x)`` for a multi-style net (each image a random style) or a single-style one.

    ``grams_s`` are per layer (styles, C, C); ``norms`` (styles, layers) the per-layer normalisers of
    the balanced loss, or None for the paper's plain sum. These styles are the net's styles
    ``offset`` .. ``offset + styles`` of ``slots`` (a net with more styles, being extended). With
    ``r.temporal_weight`` the batch is also warped by a small random motion and noised, and the
    output must move with it."""
    styles = grams_s[0].shape[0]

    def loss_fn(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
        idx = torch.randint(styles, (x.shape[0],))
        mix = one_hot(idx + offset, slots or styles).to(x.device)
        run = (lambda inp: model(inp, mix)) if multi else model
        y_hat = run(x)
        with torch.no_grad():
            content_target = vgg(x)[r.content_layer]
        feats = vgg(y_hat)
        content = losses.feature_loss(feats[r.content_layer].float(), content_target.float())
        grams = [losses.gram(f) for f in feats.values()]
        targets = [g[idx.to(g.device)] for g in grams_s]
        style = (losses.balanced_style_loss(grams, targets, norms[idx.to(norms.device)]) if norms is not None
                 else losses.style_loss(grams, targets))
        tv = losses.tv_loss(y_hat.float())
        terms = {"content": content, "style": style, "tv": tv}
        total = r.content_weight * content + r.style_weight * style + r.tv_weight * tv
        if r.temporal_weight:
            grid, moved = losses.random_warp(x)
            moved = (moved + r.temporal_noise * torch.randn_like(moved)).clamp(0, 1)
            terms["temporal"] = losses.temporal_loss(run(moved.to(x.dtype)), y_hat, grid)
            total = total + r.temporal_weight * terms["temporal"]
        return {"total": total, **terms}
    return loss_fn


def photo_norms(vgg: nn.Module, grams_s: list[torch.Tensor], data: str, size: int, photos: int = 16,
                by: str = "layer") -> torch.Tensor:
    """(styles, layers): the balanced loss's normalisers, from the mean Gram distance of ``photos``
    unchanged training photos (the first ones, centre crops at the training size: deterministic, so a
    resumed run gets the same) to each painting.

    ``by="layer"`` divides each layer by its own distance: every layer then counts alike, which for
    most paintings weighs relu1_2 (distances ~0.4) several times more than the paper's plain sum and
    relu3_3 (~6) far less, and gives blotchy nets. ``by="total"`` divides every layer by the mean
    over layers: the paper's layer mix, each painting scaled as a whole. Either way an unchanged
    photo scores 4 (one per layer on average)."""
    dists = []
    with torch.no_grad():
        for path in list_images(data)[:photos]:
            rgb = resize_short_side(read_image(path), size)
            h, w = rgb.shape[:2]
            crop = rgb[(h - size) // 2:(h - size) // 2 + size, (w - size) // 2:(w - size) // 2 + size]
            x = to_tensor(crop).to(grams_s[0].device)
            grams = [losses.gram(f) for f in vgg(x).values()]
            dists.append(torch.stack([((g - s) ** 2).sum(dim=(1, 2)) for g, s in zip(grams, grams_s)], dim=1))
    norms = torch.stack(dists).mean(dim=0)
    return norms.mean(dim=1, keepdim=True).expand_as(norms).contiguous() if by == "total" else norms


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
    start, recent = _resume(state_path, meta, net, optimizer) if resume and state_path.is_file() else (0, {})
    model = nn.parallel.DistributedDataParallel(net) if world > 1 else net
    bar = progress_bar(range(start, iterations), initial=start, total=iterations, disable=rank != 0,
               unit="it", dynamic_ncols=True, desc=meta["name"])
    model.train()

    def save(step: int) -> None:
        if rank == 0:
            checkpoint.save_training_state(state_path, {
                "model": net.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "meta": meta,
                "recent": recent})

    step = start
    stop = Interruption()  # Ctrl-C, SIGTERM, SIGHUP: stop between steps, not inside a batch's loading
    try:
        with graceful(stop):
            for step in bar:
                if stop.requested.is_set():
                    raise KeyboardInterrupt
                for group in optimizer.param_groups:
                    group["lr"] = lr * lr_factor(step, iterations, lr_decay)
                _step(model, loss_fn, next(batches), optimizer, device, amp, recent)
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


def _resume(state_path: Path, meta: dict, net: nn.Module, optimizer) -> tuple[int, dict[str, list[float]]]:
    """Load a training state into ``net`` and ``optimizer``: (its step, the last 50 steps' losses,
    which travel in the state so that a run stopped and finished later still reports them)."""
    state = checkpoint.load_training_state(state_path)
    if state["meta"].get("arch") != meta["arch"]:
        raise RtstyleError(f"{state_path} was trained with another architecture; drop --resume or change --name")
    net.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    return int(state["step"]), dict(state.get("recent", {}))


def _step(model: nn.Module, loss_fn: Callable, batch, optimizer, device: torch.device, amp, recent: dict) -> None:
    """One optimisation step on ``batch``; its losses go to ``recent`` (the last 50 of each kept)."""
    batch = [b.to(device, non_blocking=True) for b in batch] if isinstance(batch, list) else batch.to(device, non_blocking=True)
    with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
        terms = loss_fn(model, batch)
    optimizer.zero_grad(set_to_none=True)
    terms["total"].backward()
    optimizer.step()
    for k, v in terms.items():
        recent.setdefault(k, []).append(float(v.detach()))
        recent[k] = recent[k][-50:]


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
    """(dataset, loss_fn, VGG-16 hash, card entries) for style training."""
    dataset = ImageFolder(r.data, r.image_size, "style", seed=r.seed + rank)
    vgg = load_vgg16(vgg_weights, STYLE_LAYERS, dev)
    if dev.type == "cuda":
        vgg.to(memory_format=torch.channels_last)
    with torch.no_grad():
        per_style = [[losses.gram(f) for f in vgg(losses.load_style_target(p, r.style_size).to(dev)).values()]
                     for p in r.style_images()]
    grams_s = [torch.cat(layer) for layer in zip(*per_style)]  # per layer: (styles, C, C)
    card = {}
    norms = None
    if r.balanced:
        norms = photo_norms(vgg, grams_s, r.data, r.image_size, by=r.balanced)
        card["style_norms"] = {n: [round(v, 4) for v in row] for n, row in zip(r.style_names(), norms.tolist())}
    if r.add_to:
        base = models.read_meta(models.resolve(r.add_to))["arch"]["styles"]
        loss_fn = multi_style_objective(vgg, grams_s, norms, r, True, len(base), len(base) + len(per_style))
    else:
        loss_fn = multi_style_objective(vgg, grams_s, norms, r, not isinstance(r.style_image, str))
    return dataset, loss_fn, vgg.weights_hash, card


def _sr_task(r: SRRecipe, vgg_weights: str | None, dev: torch.device, rank: int):
    """(dataset, loss_fn, VGG-16 hash or None, card entries) for super-resolution training."""
    dataset = ImageFolder(r.data, r.patch_size, "sr", scale=r.scale, seed=r.seed + rank, blur=r.blur)
    vgg = load_vgg16(vgg_weights, ("relu2_2",), dev) if r.loss == "feat" else None
    loss_fn = sr_objective(vgg, r.feat_weight, r.pixel_weight, r.tv_weight)
    return dataset, loss_fn, vgg.weights_hash if vgg is not None else None, {}


def portable(path: str) -> str:
    """A path as a model card records it: under ``$RTSTYLE_SHARED`` relative to it, else the file or
    folder name alone (a card names its data, not the machine it was trained on).

    >>> portable("/home/me/photos/train")
    'train'
    """
    shared = os.environ.get("RTSTYLE_SHARED")
    p = Path(path).resolve()
    if shared and p.is_relative_to(Path(shared).resolve()):
        return "$RTSTYLE_SHARED/" + p.relative_to(Path(shared).resolve()).as_posix()
    return p.name


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
    given = asdict(recipe)
    if isinstance(recipe, StyleRecipe):
        files = [Path(p).name for p in recipe.style_images()]
        if isinstance(recipe.style_image, str):
            meta["style_image"] = files[0]
        else:
            meta["styles"], meta["style_images"] = recipe.style_names(), files
        given["style_image"] = [portable(p) for p in recipe.style_images()]
    meta["data"] = given["data"] = portable(recipe.data)
    meta["recipe"] = {**given, "batch_size": recipe.batch_size * world, "world_size": world}
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
    inputs = [p for p in (recipe.style_images() if isinstance(recipe, StyleRecipe) else [getattr(recipe, "init", None)])
              + [vgg_weights] if p]
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
    dataset, loss_fn, vgg_hash, card = task(recipe, vgg_weights, dev, rank)
    meta = {**model_card(recipe, world, vgg_hash), **card}
    if isinstance(recipe, StyleRecipe) and recipe.add_to:
        net, meta = extend(recipe, meta)
    else:
        net = build_net(recipe.arch())  # after the VGG-16: its construction draws from the same seeded generator
        _init_from(net, recipe)
    batches = _batches(dataset, recipe.batch_size, workers, recipe.seed + 1000 * rank)
    final = fit(net, loss_fn, batches, iterations=recipe.iterations, lr=recipe.lr, state_path=state_path, meta=meta,
                resume=resume, checkpoint_every=checkpoint_every, device=dev, rank=rank, world=world,
                mixed_precision=recipe.amp, lr_decay=getattr(recipe, "lr_decay", "none"))
    return _finish(net, meta, final, out_path, started, dev, rank)


# what a style added to a multi-style model takes from that model's recipe: its loss and architecture
INHERITED = ("image_size", "style_size", "content_weight", "style_weight", "tv_weight", "norm", "upsample", "width",
             "edge_kernel", "balanced", "temporal_weight", "temporal_noise", "amp", "content_layer", "style_layers")


def add_style(style_image: str, base: str, data: str, name: str, **options) -> Path | None:
    """Add a style to the multi-style model ``base`` (a name or file): a new model ``name`` with all of
    ``base``'s styles and this one, trained by fine-tuning only the new style's scales and shifts
    (every convolution and the other styles stay as they are). The loss and architecture are
    ``base``'s; ``options`` are ``train``'s keyword arguments and the schedule (iterations, lr,
    batch_size, seed)."""
    meta = models.read_meta(models.resolve(base))
    if not meta["arch"].get("styles"):
        raise RtstyleError(f"--add-to needs a multi-style model; {base} holds a single style")
    inherited = {k: meta.get("recipe", {})[k] for k in INHERITED if k in meta.get("recipe", {})}
    if "style_layers" in inherited:
        inherited["style_layers"] = tuple(inherited["style_layers"])
    return _run(StyleRecipe, {**options, **inherited}, style_image=style_image, data=data, name=name, add_to=base)


def extend(recipe: StyleRecipe, meta: dict) -> tuple[nn.Module, dict]:
    """The ``add_to`` model with ``recipe``'s styles appended (their scales and shifts start at the
    mean of the others'), everything else frozen, and its card: the base's, plus the new styles."""
    base_path = models.resolve(recipe.add_to)
    base_net, base = checkpoint.load_model(base_path)
    old, new = base["arch"]["styles"], recipe.style_names()
    if set(old) & set(new):
        raise RtstyleError(f"{base_path.name} already has a style {sorted(set(old) & set(new))[0]!r}; rename the image")
    arch = {**base["arch"], "styles": old + new}
    net = build_net(arch)
    keep = torch.ones(len(old) + len(new), 1)
    keep[:len(old)] = 0
    with torch.no_grad():
        for key, p in net.named_parameters():
            src = base_net.state_dict()[key]
            if p.shape == src.shape:
                p.copy_(src)
                p.requires_grad_(False)
            else:  # a conditional instance norm's (styles, channels) scale or shift
                p[:len(old)] = src
                p[len(old):] = src.mean(dim=0)
                p.register_hook(lambda g: g * keep.to(g))
    meta.pop("style_image", None)
    card = {**meta, "arch": arch, "styles": old + new,
            "style_images": base.get("style_images", []) + [Path(p).name for p in recipe.style_images()],
            "base": {k: base.get(k) for k in ("name", "recipe", "final_losses", "train_seconds", "hardware", "date")}}
    card["base"]["file"] = base_path.name
    if "style_norms" in base or "style_norms" in meta:
        card["style_norms"] = {**base.get("style_norms", {}), **meta.get("style_norms", {})}
    return net, card


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
