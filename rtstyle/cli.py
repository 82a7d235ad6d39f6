"""The ``rtstyle`` command line. It only parses arguments and calls into the package.

Conventions shared by every command: ``-h/--help``; ``-s/--style`` for the style model and
``-o/--output`` for what is written; choices listed in ``--help`` and checked by the parser;
``-q/--quiet`` and ``--no-progress``; ``--json`` prints a machine-readable result on stdout; an
existing output needs ``--overwrite`` and is checked before any work. Every user-facing failure is
an ``RtstyleError`` or a usage error: ``main`` prints it on one line and exits 2.
"""
from __future__ import annotations

import contextlib
import errno
import json as jsonlib
import os
import sys
from typing import Literal, Optional

import typer

from rtstyle import __version__
from rtstyle.errors import RtstyleError, configure

try:  # recent typer ships its own click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException, NoArgsIsHelpError, UsageError

STREAM_ERRORS = (errno.ENOSPC, errno.EPIPE, errno.EIO, errno.EBADF, errno.EFBIG, errno.EDQUOT)

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Real-time neural style transfer and super-resolution (Johnson et al. 2016).")
train_app = typer.Typer(no_args_is_help=True, help="Train transform nets with perceptual losses.")
app.add_typer(train_app, name="train")

# The parser's choices. The backends are rtstyle.backends.BACKENDS (tests check they match; not
# imported here, so that --help and --version do not load torch).
Backend = Literal["auto", "tensorrt", "compile", "onnxruntime", "torch"]
Precision = Literal["auto", "fp32", "fp16", "bf16", "int8"]
CODECS = ("h264", "hevc", "vp9", "av1")

VGG_HELP = ("VGG-16 weights file (torchvision layout). Default: $RTSTYLE_VGG16, the torch hub cache, "
            "then torchvision's download URL.")
PRECISION_HELP = ("auto (fp32; on a CPU bf16 or int8 when checked and measured faster), fp32, fp16 (CUDA), "
                  "bf16 (eager PyTorch; fast on CPUs with AMX or AVX512-BF16) "
                  "or int8 (CPU, ONNX Runtime; calibrated once on photos).")
STABILIZE_HELP = ("Temporal stabilisation: blend in the previous output moved by the input's optical flow "
                  "where the flow is consistent (occlusions and scene cuts take the fresh frame).")
DEVICE_HELP = "Device: cpu, cuda, cuda:1 ... Default: CUDA when present, else the CPU."
BACKEND_HELP = ("Inference backend. auto picks TensorRT or torch.compile on CUDA, and on the CPU whichever "
                "of ONNX Runtime and eager PyTorch measured faster.")
SIZE_HELP = "Stylize at exactly WIDTHxHEIGHT, then scale back to the input's size."
STRENGTH_HELP = "Blend with the original: 0 is the original, 1 fully stylized."
PRESERVE_HELP = "Keep the source's colours (stylize the luminance only)."
OVERWRITE_HELP = "Replace an existing output file (never the input)."
JSON_HELP = "Print the result as one JSON object on stdout (messages stay on stderr)."
STYLE_HELP = "Style model: an installed name (see `rtstyle styles`) or a model file."

QUIET = typer.Option(False, "-q", "--quiet", help="Print only warnings and errors.")
NO_PROGRESS = typer.Option(False, "--no-progress", help="No progress bars (never shown when stderr is not a terminal).")
OVERWRITE = typer.Option(False, "--overwrite", help=OVERWRITE_HELP)
MODEL_OUTPUT = typer.Option(None, "-o", "--output", "--out",
                            help="Model file to write. Default: NAME.safetensors in the user model folder.")
RESUME = typer.Option(False, help="Continue from the last saved training state (NAME.state.pt beside the output); "
                                  "replaces the output.")
CHECKPOINT_EVERY = typer.Option(1000, help="Save the training state every N steps.")
JSON = typer.Option(False, "--json", help=JSON_HELP)


def _device(value: Optional[str]) -> Optional[str]:
    """--device, checked when parsed: a device this machine has (CUDA asked for without CUDA is a
    one-line usage error, not a crash later)."""
    if value is None:
        return None
    from rtstyle.backends import resolve_device

    try:
        return str(resolve_device(value))
    except RtstyleError as e:
        raise typer.BadParameter(str(e)) from None


def _codec(value: Optional[str]) -> Optional[str]:
    if value is None or value in CODECS or value in ("h265", "vp8"):
        return value
    import av

    if value in av.codecs_available:
        try:
            if av.Codec(value, "w").type == "video":
                return value
        except (ValueError, av.error.FFmpegError):
            pass
    raise typer.BadParameter(f"{value!r} is not a video encoder of this FFmpeg, nor one of {', '.join(CODECS)}")


DEVICE = typer.Option(None, "--device", help=DEVICE_HELP, parser=_device, metavar="DEVICE")
CODEC = typer.Option(None, "--codec", parser=_codec, metavar="[h264|hevc|vp9|av1|ENCODER]",
                     help="Video encoder: h264, hevc, vp9, av1 or an FFmpeg encoder name such as h264_nvenc. "
                          "Default: h264 (vp9 in .webm).")


def _quiet(quiet: bool, no_progress: bool) -> None:
    if quiet or no_progress:
        configure(quiet=quiet, progress=not no_progress)


def _print_json(obj) -> None:
    print(jsonlib.dumps(obj, indent=2, default=str))


def _version(value: bool) -> None:
    if value:
        print(f"rtstyle {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_version, help="Print the version and exit."),
    quiet: bool = QUIET,
    no_progress: bool = NO_PROGRESS,
) -> None:
    """Real-time neural style transfer and super-resolution (Johnson et al. 2016)."""
    _quiet(quiet, no_progress)


# ---------------------------------------------------------------- training

@train_app.command("style")
def train_style(
    style_image: list[str] = typer.Argument(..., help="The style image; several train one multi-style net "
                                            "(conditional instance norm; each style named by its file)."),
    data: str = typer.Option(..., help="Folder of training photos (searched recursively)."),
    name: str = typer.Option(..., help="Model name; `--style NAME` finds the model afterwards."),
    iterations: int = typer.Option(40000, help="Training steps (the paper's 40,000)."),
    batch_size: int = typer.Option(4, help="Images per step (per process under torchrun)."),
    image_size: int = typer.Option(256, help="Training crop size in pixels."),
    style_size: Optional[int] = typer.Option(512, help="Resize the style image's longer side to this."),
    content_weight: Optional[float] = typer.Option(None, help="Weight of the feature loss at relu3_3. Default: 1."),
    style_weight: Optional[float] = typer.Option(None, help="Weight of the Gram style loss, relu1_2..relu4_3. Default: 1."),
    tv_weight: Optional[float] = typer.Option(None, help="Weight of the total variation regulariser. Default: 1."),
    lr: float = typer.Option(1e-3, help="Adam learning rate."),
    output: Optional[str] = MODEL_OUTPUT,
    overwrite: bool = OVERWRITE,
    resume: bool = RESUME,
    checkpoint_every: int = CHECKPOINT_EVERY,
    norm: Literal["instance", "batch"] = typer.Option("instance", help="Normalisation: instance (Ulyanov et al.) or batch (the paper's)."),
    upsample: Literal["resize", "deconv"] = typer.Option("resize", help="Upsampling: resize (nearest + conv, no checkerboard) or deconv (the paper's)."),
    width: float = typer.Option(1.0, help="Channel width multiplier: 1.0 is the paper's net, 0.5 runs about 3x faster."),
    edge_kernel: int = typer.Option(9, help="Kernel of the first and last conv (paper: 9; 5 is cheaper on a CPU)."),
    balanced: Optional[Literal["layer", "total"]] = typer.Option(
        None, help="Normalise the style term by unchanged photos' Gram distance to the painting, so one "
        "--style-weight suits every painting: 'total' scales each painting as a whole (the paper's layer mix), "
        "'layer' each layer by its own distance. Default: the paper's plain sum."),
    temporal: float = typer.Option(0.0, help="Weight of the temporal stability loss (Wang et al. 2020: a randomly "
                                   "warped and noised input must give the warped output); 0 = off."),
    add_to: Optional[str] = typer.Option(None, help="A multi-style model (e.g. zoo): write --name with its styles plus "
                                         "this one, fine-tuning only the new style's scales and shifts; the loss, "
                                         "sizes and architecture are that model's."),
    vgg_weights: Optional[str] = typer.Option(None, help=VGG_HELP),
    seed: int = typer.Option(0, help="Random seed (initial weights, crops)."),
    workers: int = typer.Option(2, help="Data loading processes."),
    device: Optional[str] = DEVICE,
    amp: bool = typer.Option(True, help="bf16 mixed precision where the hardware has it (CUDA, AVX512-BF16/AMX CPUs)."),
    quiet: bool = QUIET,
    no_progress: bool = NO_PROGRESS,
) -> None:
    """Train a style transfer net (the paper's sections 3.1 and 4.1)."""
    _quiet(quiet, no_progress)
    from rtstyle.train import StyleRecipe, train

    images = style_image[0] if len(style_image) == 1 else tuple(style_image)
    run = dict(out=output, resume=resume, checkpoint_every=checkpoint_every, vgg_weights=vgg_weights, workers=workers,
               device=device, overwrite=overwrite)
    if add_to:
        from rtstyle.train import add_style
        add_style(images, add_to, data, name, iterations=iterations, batch_size=batch_size, lr=lr, seed=seed, **run)
        return
    weights = {k: v for k, v in dict(content_weight=content_weight, style_weight=style_weight,
                                     tv_weight=tv_weight).items() if v is not None}
    recipe = StyleRecipe(images, data, name, iterations=iterations, batch_size=batch_size, image_size=image_size,
                         style_size=style_size, lr=lr, norm=norm, upsample=upsample, width=width,
                         edge_kernel=edge_kernel, balanced=balanced or "", temporal_weight=temporal, seed=seed, amp=amp,
                         **weights)
    train(recipe, **run)


@train_app.command("sr")
def train_sr(
    data: str = typer.Option(..., help="Folder of training photos (searched recursively)."),
    scale: Literal[4, 8] = typer.Option(4, help="Upscaling factor."),
    loss: Literal["feat", "pixel"] = typer.Option("feat", help="Loss: feat (feature loss at relu2_2) or pixel."),
    name: Optional[str] = typer.Option(None, help="Model name. Default: sr_x{scale}_{loss}."),
    iterations: int = typer.Option(200000, help="Training steps (the paper's 200,000)."),
    batch_size: int = typer.Option(4, help="Patches per step (per process under torchrun)."),
    patch_size: int = typer.Option(288, help="High-resolution patch size (the paper's 288)."),
    tv_weight: float = typer.Option(0.0, help="Weight of the total variation regulariser."),
    lr: float = typer.Option(1e-3, help="Adam learning rate."),
    output: Optional[str] = MODEL_OUTPUT,
    overwrite: bool = OVERWRITE,
    resume: bool = RESUME,
    checkpoint_every: int = CHECKPOINT_EVERY,
    width: float = typer.Option(1.0, help="Channel width multiplier (1.0 is the paper's net)."),
    vgg_weights: Optional[str] = typer.Option(None, help=VGG_HELP),
    seed: int = typer.Option(0, help="Random seed (initial weights, patches)."),
    workers: int = typer.Option(2, help="Data loading processes."),
    device: Optional[str] = DEVICE,
    amp: bool = typer.Option(True, help="bf16 mixed precision where the hardware has it."),
    residual: bool = typer.Option(False, help="Add the bicubic upsampling to the output (not in the paper): "
                                  "starts at bicubic quality, for short trainings."),
    norm: Literal["batch", "instance", "none"] = typer.Option("batch", help="Normalisation: batch (the paper's), instance or none."),
    upsample: Literal["resize", "deconv"] = typer.Option("resize", help="Upsampling: resize (nearest x2 + conv, no checkerboard) or deconv (the paper's)."),
    taper: bool = typer.Option(False, help="Halve the channels at each upsampling (about 2.5x less arithmetic)."),
    feat_weight: float = typer.Option(1.0, help="Weight of the relu2_2 feature loss (--loss feat)."),
    pixel_weight: Optional[float] = typer.Option(None, help="Weight of the pixel loss. Default: 1 for --loss pixel, 0 for feat."),
    lr_decay: Literal["none", "cosine"] = typer.Option("none", help="Learning rate schedule: none, or cosine (to 0 at the last step)."),
    blur: float = typer.Option(0.0, help="Gaussian blur sigma of the training inputs before downsampling "
                               "(the paper's 1.0; 0 matches the benchmarks' inputs)."),
    init: Optional[str] = typer.Option(None, help="Start from this SR model's weights (same architecture)."),
    quiet: bool = QUIET,
    no_progress: bool = NO_PROGRESS,
) -> None:
    """Train a super-resolution net (the paper's section 4.2)."""
    _quiet(quiet, no_progress)
    from rtstyle.train import SRRecipe, train

    recipe = SRRecipe(data, name or f"sr_x{scale}_{loss}", scale=scale, loss=loss, iterations=iterations,
                      batch_size=batch_size, patch_size=patch_size, feat_weight=feat_weight, pixel_weight=pixel_weight,
                      tv_weight=tv_weight, lr=lr, lr_decay=lr_decay, norm=norm, upsample=upsample, width=width,
                      residual=residual, taper=taper, blur=blur, init=init, seed=seed, amp=amp)
    train(recipe, out=output, resume=resume, checkpoint_every=checkpoint_every, vgg_weights=vgg_weights,
          workers=workers, device=device, overwrite=overwrite)


# ---------------------------------------------------------------- models, this installation

@app.command("styles")
def styles(json: bool = JSON) -> None:
    """List the installed models: those shipped with rtstyle, then your own trained ones."""
    from rtstyle.models import list_models

    found = list_models()
    if json:
        return _print_json([{"name": name, "kind": meta["arch"]["kind"], "arch": meta["arch"], "path": str(path),
                             "style_image": meta.get("style_image")} for name, path, meta in found])
    for name, path, meta in found:
        arch = meta["arch"]
        kind = f"sr x{arch['scale']}" if arch["kind"] == "sr" else f"style w{arch.get('width', 1.0)}"
        image = dict(zip(arch.get("styles", []), meta.get("style_images", []))).get(name)  # a multi-style file's
        print(f"{name:<20} {kind:<12} {image or meta.get('style_image', meta.get('recipe', {}).get('loss', '')):<28} {path}")


@app.command("info")
def info(json: bool = JSON) -> None:
    """Versions, devices, which backends this installation can run (and why not the others),
    and the folders rtstyle reads models from and caches engines in."""
    from rtstyle.info import collect, format_info

    report = collect()
    _print_json(report) if json else print(format_info(report))


# ---------------------------------------------------------------- benchmarks (Gatys baseline, speed tables)

@app.command("gatys")
def gatys(
    content: str = typer.Argument(..., help="The content image."),
    style_image: str = typer.Option(..., "-s", "--style-image", help="The style image."),
    iterations: int = typer.Option(500, help="L-BFGS iterations; one is one VGG-16 forward and backward pass."),
    size: int = typer.Option(512, help="Resize the content image's longer side to this (0 keeps its size)."),
    style_size: Optional[int] = typer.Option(None, help="Resize the style image's longer side to this. Default: as the content."),
    init: Literal["content", "noise"] = typer.Option("content", help="Start from the content image or from uniform noise."),
    output: Optional[str] = typer.Option(None, "-o", "--output", "--out", help="Output image. Default: ./CONTENT-STEM.gatys.png."),
    overwrite: bool = OVERWRITE,
    vgg_weights: Optional[str] = typer.Option(None, help=VGG_HELP),
    device: Optional[str] = DEVICE,
    seed: int = typer.Option(0, help="Seed of the noise initialisation."),
    quiet: bool = QUIET,
    no_progress: bool = NO_PROGRESS,
) -> None:
    """Stylise one image by optimisation, the slow baseline of the paper's Table 1 (Gatys et al., 2016)."""
    _quiet(quiet, no_progress)
    from pathlib import Path

    from rtstyle.gatys import stylise_file

    stylise_file(content, style_image, output or f"{Path(content).stem}.gatys.png", iterations=iterations,
                 size=size or None, style_size=style_size, init=init, vgg_weights=vgg_weights, device=device,
                 overwrite=overwrite, seed=seed)


def _ints(text: Optional[str], option: str) -> Optional[list[int]]:
    if not text:
        return None
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise RtstyleError(f"{option} takes comma-separated integers, not {text!r}") from None


@contextlib.contextmanager
def _stdout_for_json(json: bool):
    """With --json, stdout holds only the JSON: the tables a command prints go to stderr."""
    with contextlib.redirect_stdout(sys.stderr) if json else contextlib.nullcontext():
        yield


@app.command("bench")
def bench(
    sizes: Optional[str] = typer.Option(None, help="Square image sizes. Default: 256,512,1024 (--quick: 64,256)."),
    iterations: Optional[str] = typer.Option(None, help="Gatys L-BFGS iteration counts. Default: 100,300,500."),
    backend: Optional[str] = typer.Option(None, help="Backends for the per-backend rows, comma-separated. Default: all (--quick: torch)."),
    measured_iterations: Optional[int] = typer.Option(None, help="Gatys iterations timed per size, the rest projected. Default: 3 on the CPU; on CUDA all run."),
    full: bool = typer.Option(False, help="Run every Gatys iteration instead of projecting (hours on a CPU)."),
    quick: bool = typer.Option(False, help="Small sizes and few frames: under a minute on 2 CPU cores."),
    resolutions: Optional[str] = typer.Option(None, help="Pipeline resolutions, e.g. 640x360,1280x720 ('none' skips the section). Default: 640x360,1280x720,1920x1080."),
    frames: Optional[int] = typer.Option(None, help="Pipeline clip frames at 1920x1080; smaller resolutions get proportionally more, up to 3x. Default: 3 on the CPU, 60 on CUDA."),
    clip: Optional[str] = typer.Option(None, help="Video for the pipeline section. Default: $RTSTYLE_SHARED/data/video/chaplin.mp4, else a synthetic clip."),
    device: Optional[str] = DEVICE,
    output: Optional[str] = typer.Option(None, "-o", "--output", help="Results JSON file (Markdown beside it). Default: benchmarks/results/bench-DEVICE.json."),
    plot_path: Optional[str] = typer.Option(None, "--plot", help="Speedup chart PNG (needs matplotlib). Default: beside the JSON."),
    overwrite: bool = OVERWRITE,
    json: bool = JSON,
    quiet: bool = QUIET,
    no_progress: bool = NO_PROGRESS,
) -> None:
    """The paper's Table 1 on this machine: optimisation (Gatys et al.) vs one feed-forward pass,
    per backend, and the video pipeline vs a naive loop."""
    _quiet(quiet, no_progress)
    from rtstyle.bench import bench as run

    res = None
    if resolutions is not None:
        try:
            res = [] if resolutions == "none" else [tuple(int(v) for v in r.lower().split("x")) for r in resolutions.split(",")]
        except ValueError:
            raise RtstyleError(f"--resolutions takes WIDTHxHEIGHT,... (e.g. 640x360,1280x720), not {resolutions!r}") from None
    with _stdout_for_json(json):
        results = run(sizes=_ints(sizes, "--sizes"), iterations=_ints(iterations, "--iterations"),
                      backends=[b.strip() for b in backend.split(",")] if backend else None,
                      measured_iterations=measured_iterations, full=full, quick=quick, resolutions=res, frames=frames,
                      clip=clip, device=device, json_path=output, plot_path=plot_path, overwrite=overwrite)
    if json:
        _print_json(results)


# ---------------------------------------------------------------- camera

@app.command("cam")
def cam(
    source: str = typer.Option("0", help="Camera index, /dev/videoN, a stream URL (udp://, rtsp://, http://...) or a video file."),
    style: Optional[str] = typer.Option(None, "-s", "--style", help=STYLE_HELP + " Default: the first installed style."),
    backend: Backend = typer.Option("auto", help=BACKEND_HELP),
    precision: Precision = typer.Option("auto", help=PRECISION_HELP),
    device: Optional[str] = DEVICE,
    window: bool = typer.Option(True, help="Show the preview window (keys: 1-9 style, space original, s snapshot, q quit; needs rtstyle[gui])."),
    record: Optional[str] = typer.Option(None, "-o", "--output", "--record",
                                         help="Also record what is shown to this .mp4/.mov/.mkv (finalised on exit and on Ctrl-C)."),
    frames: Optional[int] = typer.Option(None, help="Stop after this many frames. Default: run until q, Ctrl-C or the end of the source."),
    max_side: Optional[int] = typer.Option(None, help="Run the net at most this many pixels on the longer side (faster). Default: the frame's size."),
    overwrite: bool = OVERWRITE,
    retries: int = typer.Option(5, help="Reconnect attempts in a row when a live source drops (backoff 0.5 s, doubling, max 8 s)."),
    timeout: float = typer.Option(5.0, help="Seconds without data before a stream counts as unavailable or dropped."),
    stabilize: bool = typer.Option(False, help=STABILIZE_HELP),
    quiet: bool = QUIET,
) -> None:
    """Stylize a live camera or stream, processing always the newest frame (stale ones are dropped)."""
    _quiet(quiet, False)
    from rtstyle.camera import run

    run(source, style, backend=backend, precision=precision, device=device, window=window, record=record,
        frames=frames, max_side=max_side, overwrite=overwrite, retries=retries, timeout=timeout, stabilize=stabilize)


# ---------------------------------------------------------------- evaluation

eval_app = typer.Typer(no_args_is_help=True, help="Measure models against the paper's tables (SR PSNR/SSIM, style vs Gatys).")
app.add_typer(eval_app, name="eval")


@eval_app.command("sr")
def eval_sr(
    set_dir: str = typer.Option(..., "--set", help="Folder of high-resolution ground-truth images (Set5, Set14, BSD100)."),
    scale: Literal[4, 8] = typer.Option(4, help="Upscaling factor."),
    model: str = typer.Option("bicubic", help="SR model name or file; 'bicubic' evaluates the baseline alone (always shown)."),
    blur: float = typer.Option(0.0, help="Gaussian blur sigma before downsampling (1.0 is the training degradation; "
                                         "0 the SR literature's benchmark input)."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="Also write the per-image and mean scores to this JSON file."),
    overwrite: bool = OVERWRITE,
    json: bool = JSON,
    backend: Backend = typer.Option("torch", help="Inference backend for the model."),
    device: Optional[str] = DEVICE,
    quiet: bool = QUIET,
    no_progress: bool = NO_PROGRESS,
) -> None:
    """PSNR / SSIM on Y of x4 / x8 super-resolution beside the paper's (Johnson et al. 2016, section 4.2)."""
    _quiet(quiet, no_progress)
    from rtstyle.evaluate import eval_sr as run

    with _stdout_for_json(json):
        result = run(set_dir, scale, model, blur=blur, device=device, backend=backend, json_path=output,
                     overwrite=overwrite)
    if json:
        _print_json(result)


@eval_app.command("style")
def eval_style(
    style: str = typer.Option(..., "-s", "--style", help=STYLE_HELP),
    content: str = typer.Option(..., help="Folder of held-out photos (e.g. BSD100; never the training photos)."),
    gatys_iterations: str = typer.Option("50,100,300,500", help="L-BFGS iteration counts to compare against."),
    size: int = typer.Option(256, help="Centre square crop size in pixels (the paper's 256-1024; keep it small on a CPU)."),
    images: int = typer.Option(2, help="How many photos of --content to use (the first N, sorted)."),
    init: Literal["noise", "content"] = typer.Option("noise", help="Start L-BFGS from noise (Gatys et al., the paper) or from the content photo."),
    style_image: Optional[str] = typer.Option(None, help="The style image. Default: the model card's, in $RTSTYLE_SHARED/data/styles/."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="Also write the results to this JSON file."),
    plot: Optional[str] = typer.Option(None, help="Write the objective-vs-iterations plot to this PNG/SVG/PDF."),
    overwrite: bool = OVERWRITE,
    json: bool = JSON,
    vgg_weights: Optional[str] = typer.Option(None, help=VGG_HELP),
    device: Optional[str] = DEVICE,
    quiet: bool = QUIET,
    no_progress: bool = NO_PROGRESS,
) -> None:
    """The training objective of a net's output vs Gatys et al.'s L-BFGS after N iterations (paper Figure 5).

    Costly on a CPU: every L-BFGS iteration is a VGG-16 forward and backward pass (about 3 s at 256x256
    on 2 cores), so the defaults take about 25 minutes per image there.
    """
    _quiet(quiet, no_progress)
    from rtstyle.evaluate import eval_style as run

    try:
        counts = tuple(int(v) for v in gatys_iterations.split(","))
    except ValueError:
        raise RtstyleError(f"--gatys-iterations must be comma-separated counts like 50,100,300,500, not {gatys_iterations!r}") from None
    with _stdout_for_json(json):
        result = run(style, content, gatys_iterations=counts, size=size, images=images, init=init,
                     style_image=style_image, json_path=output, plot_path=plot, overwrite=overwrite,
                     vgg_weights=vgg_weights, device=device)
    if json:
        _print_json(result)


@eval_app.command("flicker")
def eval_flicker(
    style: str = typer.Option("candy,mosaic,udnie", "-s", "--style", help="Comma-separated style model names or files."),
    clips: Optional[list[str]] = typer.Option(None, "--clip", help="Video to measure (repeatable). Default: $RTSTYLE_SHARED/data/video/*."),
    pan: Optional[str] = typer.Option(None, help="Photo for the synthetic pan (exact known motion), 'none' to skip. Default: $RTSTYLE_SHARED/data/content/chicago.jpg."),
    frames: int = typer.Option(30, help="Frames per clip (the first N)."),
    side: int = typer.Option(320, help="Downscale frames to at most this many pixels on the longer side (the net runs there)."),
    style_every: int = typer.Option(6, help="Style loss on every N-th frame (0: skip the style loss and VGG)."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="Also write the results to this JSON file."),
    plot: Optional[str] = typer.Option(None, help="Write the bar chart to this PNG."),
    overwrite: bool = OVERWRITE,
    json: bool = JSON,
    backend: Backend = typer.Option("auto", help="Inference backend for the style nets."),
    vgg_weights: Optional[str] = typer.Option(None, help=VGG_HELP),
    device: Optional[str] = DEVICE,
    quiet: bool = QUIET,
    no_progress: bool = NO_PROGRESS,
) -> None:
    """Warping error (flicker) of stylized video, per-frame vs --stabilize, beside the input's own error.

    Farneback flow on the input frames with a forward-backward consistency mask; exact flow on the pan.
    """
    _quiet(quiet, no_progress)
    from pathlib import Path

    from rtstyle.flicker import eval_flicker as run

    shared = os.environ.get("RTSTYLE_SHARED")
    if pan is None and shared:
        pan = str(Path(shared) / "data" / "content" / "chicago.jpg")
    with _stdout_for_json(json):
        result = run([s.strip() for s in style.split(",") if s.strip()], [Path(c) for c in clips] if clips else None,
                     Path(pan) if pan and pan != "none" else None, frames=frames, side=side, style_every=style_every,
                     json_path=output, plot_path=plot, overwrite=overwrite, backend=backend, vgg_weights=vgg_weights,
                     device=device)
    if json:
        _print_json(result)


# ---------------------------------------------------------------- backends (ONNX export, TensorRT engines)

@app.command("export")
def export_model(
    style: str = typer.Option(..., "-s", "--style", help="Model: an installed name or a model file (style or SR)."),
    fmt: Literal["onnx", "tensorrt"] = typer.Option("onnx", "--format", help="onnx (a file) or tensorrt (an engine in the engine folder)."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="ONNX file to write. Default: NAME.onnx."),
    precision: Optional[Literal["fp32", "fp16", "int8"]] = typer.Option(None, help="Precision (int8: onnx only). Default: fp32 for onnx, fp16 for tensorrt."),
    min_hw: Optional[str] = typer.Option(None, "--min", help="Smallest input HxW of the engine's profile. Default: 32x32."),
    opt_hw: Optional[str] = typer.Option(None, "--opt", help="Input HxW the engine is tuned for. Default: 720x1280."),
    max_hw: Optional[str] = typer.Option(None, "--max", help="Largest input HxW of the engine's profile. Default: 1088x1920."),
    max_batch: int = typer.Option(4, help="Largest batch of the engine's profile."),
    overwrite: bool = typer.Option(False, help="Replace an existing ONNX file, or rebuild a cached engine."),
    quiet: bool = QUIET,
    no_progress: bool = NO_PROGRESS,
) -> None:
    """Export a model as one self-contained ONNX file (dynamic batch, height, width), or build its
    TensorRT engine into the engine folder ($RTSTYLE_ENGINE_DIR, default ~/.cache/rtstyle/engines)."""
    _quiet(quiet, no_progress)
    from rtstyle.export import export

    print(export(style, fmt, output, precision, {"min": min_hw, "opt": opt_hw, "max": max_hw}, max_batch, overwrite))


# ---------------------------------------------------------------- video files and images

def _frame_options(max_side: Optional[int] = None, size: Optional[str] = None, strength: float = 1.0,
                   preserve_color: bool = False, side_by_side: bool = False, tile: Optional[int] = None,
                   stabilize: bool = False):
    from rtstyle.frames import Options, parse_size

    return Options(max_side=max_side, size=parse_size(size), strength=strength, preserve_color=preserve_color,
                   side_by_side=side_by_side, tile=tile, stabilize=stabilize)


def _no_json_on_stdout(json: bool, output: Optional[str]) -> None:
    if json and output == "-":
        raise RtstyleError("--json and -o - both write to stdout; choose one")


@app.command("video")
def video(
    input: str = typer.Argument(..., help="Video file (any container and codec FFmpeg reads)."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="Output video. Default: IN-STEM.STYLE.mp4 beside the input."),
    style: str = typer.Option(..., "-s", "--style", help=STYLE_HELP),
    backend: Backend = typer.Option("auto", help=BACKEND_HELP),
    precision: Precision = typer.Option("auto", help=PRECISION_HELP),
    device: Optional[str] = DEVICE,
    max_side: Optional[int] = typer.Option(None, help="Stylize at most this many pixels on the longer side, then scale back (faster, coarser strokes). Default: the frame's size."),
    size: Optional[str] = typer.Option(None, help=SIZE_HELP),
    strength: float = typer.Option(1.0, help=STRENGTH_HELP),
    preserve_color: bool = typer.Option(False, help=PRESERVE_HELP),
    side_by_side: bool = typer.Option(False, help="Write original | stylized."),
    codec: Optional[str] = CODEC,
    crf: Optional[int] = typer.Option(None, help="Constant quality, lower is better. Default: 18 for h264 and hevc, 30 for vp9."),
    batch: int = typer.Option(1, help="Frames per inference call."),
    stabilize: bool = typer.Option(False, help=STABILIZE_HELP),
    overwrite: bool = OVERWRITE,
    json: bool = JSON,
    quiet: bool = QUIET,
    no_progress: bool = NO_PROGRESS,
) -> None:
    """Stylize every frame of a video, keeping its timestamps, rotation and audio."""
    _quiet(quiet, no_progress)
    from rtstyle.stream import video_command

    report = video_command(input, output, style, "style", backend, precision, device,
                           _frame_options(max_side, size, strength, preserve_color, side_by_side, stabilize=stabilize),
                           codec, crf, batch, overwrite)
    if json:
        _print_json(report.as_dict())


@app.command("upscale")
def upscale(
    input: str = typer.Argument(..., help="Image or video (decided by its content), or - for an image on stdin."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="Output file, or - for a PNG on stdout. "
                                         "Default: IN-STEM.MODEL.EXT beside the input (videos as .mp4; stdin: stdout)."),
    scale: Optional[Literal[4, 8]] = typer.Option(None, help="Upscaling factor; picks sr_x4_pixel or sr_x8_feat (the shipped nets that looked best). Default: 4."),
    model: Optional[str] = typer.Option(None, "-m", "--model", help="SR model name or model file (instead of --scale)."),
    tile: Optional[int] = typer.Option(None, help="Process in overlapping tiles of N input pixels (large frames, bounded memory, no seams)."),
    side_by_side: bool = typer.Option(False, help="Write bicubic | super-resolved."),
    backend: Backend = typer.Option("auto", help=BACKEND_HELP),
    precision: Precision = typer.Option("auto", help=PRECISION_HELP),
    device: Optional[str] = DEVICE,
    codec: Optional[str] = CODEC,
    crf: Optional[int] = typer.Option(None, help="Video constant quality (see `rtstyle video --help`)."),
    batch: int = typer.Option(1, help="Video frames per inference call."),
    overwrite: bool = OVERWRITE,
    json: bool = JSON,
    quiet: bool = QUIET,
    no_progress: bool = NO_PROGRESS,
) -> None:
    """Super-resolution (x4 / x8) of an image or a video."""
    _quiet(quiet, no_progress)
    _no_json_on_stdout(json, output)
    from rtstyle.stream import upscale_command

    from rtstyle.models import DEFAULT_SR

    result = upscale_command(input, output, model or DEFAULT_SR[scale or 4], backend, precision, device,
                             _frame_options(side_by_side=side_by_side, tile=tile), codec, crf, batch, overwrite,
                             scale=scale if model else None)
    if json:
        _print_json(result if isinstance(result, dict) else result.as_dict())


@app.command("stylize")
def stylize(
    inputs: list[str] = typer.Argument(..., help="Images and folders of images, or - for one image on stdin."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="Output image, folder for several inputs, or - "
                                         "for a PNG on stdout. Default: STEM.STYLE.EXT beside each image, folder DIR "
                                         "to DIR.STYLE/, stdin to stdout."),
    style: str = typer.Option(..., "-s", "--style", help=STYLE_HELP),
    backend: Backend = typer.Option("auto", help=BACKEND_HELP),
    precision: Precision = typer.Option("auto", help=PRECISION_HELP),
    device: Optional[str] = DEVICE,
    max_side: Optional[int] = typer.Option(None, help="Stylize at most this many pixels on the longer side, then scale back. Default: the image's size."),
    size: Optional[str] = typer.Option(None, help=SIZE_HELP),
    strength: float = typer.Option(1.0, help=STRENGTH_HELP),
    preserve_color: bool = typer.Option(False, help=PRESERVE_HELP),
    side_by_side: bool = typer.Option(False, help="Write original | stylized."),
    overwrite: bool = OVERWRITE,
    json: bool = JSON,
    quiet: bool = QUIET,
    no_progress: bool = NO_PROGRESS,
) -> None:
    """Stylize images and folders of images."""
    _quiet(quiet, no_progress)
    _no_json_on_stdout(json, output)
    from rtstyle.stream import images_command

    result = images_command(inputs, output, style, "style", backend, precision, device,
                            _frame_options(max_side, size, strength, preserve_color, side_by_side), overwrite)
    if json:
        _print_json(result)


@app.command("sheet")
def sheet(
    photo: str = typer.Argument(..., help="The photo, or - for one on stdin."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="Output image, or - for a PNG on stdout. "
                                         "Default: PHOTO-STEM.sheet.png beside the photo (stdin: stdout)."),
    style: Optional[str] = typer.Option(None, "-s", "--style", help="Comma-separated style models. Default: every installed style."),
    cell: int = typer.Option(320, help="Width of each tile in pixels."),
    columns: int = typer.Option(4, help="Tiles per row."),
    backend: Backend = typer.Option("torch", help="Inference backend (torch: no export for one image per style)."),
    device: Optional[str] = DEVICE,
    overwrite: bool = OVERWRITE,
    quiet: bool = QUIET,
    no_progress: bool = NO_PROGRESS,
) -> None:
    """One photo in every style, side by side on one labelled contact sheet."""
    _quiet(quiet, no_progress)
    from rtstyle.sheet import sheet_command

    sheet_command(photo, output, [s.strip() for s in style.split(",") if s.strip()] if style else None, cell,
                  columns, backend, device, overwrite)


# ---------------------------------------------------------------- demo

@app.command("demo")
def demo(
    output: str = typer.Option("out/demo", "-o", "--output", "--out", help="Folder for the results (the demo replaces its own earlier ones)."),
    style: str = typer.Option("candy", "-s", "--style", help="Shipped style to use."),
    backend: Backend = typer.Option("auto", help=BACKEND_HELP),
    quiet: bool = QUIET,
    no_progress: bool = NO_PROGRESS,
) -> None:
    """Stylize the bundled photo and clip with a shipped style (what `make demo` runs)."""
    _quiet(quiet, no_progress)
    from pathlib import Path

    from rtstyle.demo import run_demo

    run_demo(Path(output), style, backend)


# ---------------------------------------------------------------- entry point

def main(argv: list[str] | None = None) -> int:
    """Run the CLI; turn every expected failure into one line on stderr and a non-zero exit code.

    Usage errors (unknown option, missing argument, bad value) are one line like every other error
    (exit 2); Ctrl-C exits 130, and SIGTERM and SIGHUP act as Ctrl-C does (exit 143, 129).
    """
    from rtstyle import interrupt

    _standard_streams()
    configure()  # each call starts from the defaults (tests call main many times in one process)
    try:
        with interrupt.stop_signals():
            code = app(args=argv, prog_name="rtstyle", standalone_mode=False)
        code = code if isinstance(code, int) else 0
        return interrupt.exit_code() if code == 130 else code
    except SystemExit as e:
        stream = e.__context__  # typer turns a closed pipe into a silent exit 1
        if isinstance(stream, OSError) and stream.errno in STREAM_ERRORS and not stream.filename:
            return _error(f"cannot write the output stream: {os.strerror(stream.errno)}", 2)
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        return interrupt.exit_code() if code == 130 else code
    except NoArgsIsHelpError as e:  # `rtstyle`, `rtstyle train`: the help, as before
        print(e.format_message(), file=sys.stderr)
        return 2
    except UsageError as e:
        where = f" (see `{e.ctx.command_path} --help`)" if e.ctx else ""
        return _error(f"{' '.join(e.format_message().replace('Value error, ', '').split())}{where}", 2)
    except ClickException as e:
        return _error(" ".join(e.format_message().split()), e.exit_code)
    except RtstyleError as e:
        return _error(str(e), e.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        print("rtstyle: interrupted", file=sys.stderr)
        return interrupt.exit_code()
    except OSError as e:  # not a file rtstyle writes (those are RtstyleErrors): stdout or stderr
        if e.errno in STREAM_ERRORS and not e.filename:
            return _error(f"cannot write the output stream: {os.strerror(e.errno)}", 2)
        return _internal(e)
    except Exception as e:  # last resort: a bug, still reported in one line
        return _internal(e)


def _error(message: str, code: int) -> int:
    try:
        print(f"rtstyle: error: {message}", file=sys.stderr, flush=True)
    except OSError:  # stderr itself is full or gone: the exit code still tells
        pass
    return code


def _internal(e: Exception) -> int:
    if os.environ.get("RTSTYLE_DEBUG"):
        raise e
    detail = str(e).strip().splitlines()[0] if str(e).strip() else ""
    print(f"rtstyle: internal error: {e.__class__.__name__}: {detail} (set RTSTYLE_DEBUG=1 for the traceback)",
          file=sys.stderr)
    return 1


def _standard_streams() -> None:
    """Descriptors 0-2 open, on /dev/null if the caller closed them (`2>&-`): otherwise the next
    file opened takes the number, and FFmpeg's and OpenCV's messages for stderr land in the output
    video. Python then has no sys.stderr either: one is made, so errors still cost no traceback."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            if fd and getattr(sys, ("stdout", "stderr")[fd - 1]) is None:
                setattr(sys, ("stdout", "stderr")[fd - 1], open(fd, "w", closefd=False))


def entry() -> None:
    code = main()
    try:
        sys.stdout.flush()  # what a full disk or a closed pipe refuses shows here at the latest
    except OSError as e:
        code = _error(f"cannot write the output stream: {os.strerror(e.errno)}", 2)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # (Python flushes it again at exit)
    sys.exit(code)
