"""The ``rtstyle`` command line. It only parses arguments and calls into the package.

Every user-facing failure is an ``RtstyleError``: ``main`` prints it on one line and exits non-zero.
"""
from __future__ import annotations

import os
import sys
from typing import Optional

import errno

import typer

try:  # recent typer ships its own click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:
    from click.exceptions import ClickException, NoArgsIsHelpError, UsageError

from rtstyle.errors import RtstyleError

STREAM_ERRORS = (errno.ENOSPC, errno.EPIPE, errno.EIO, errno.EBADF, errno.EFBIG, errno.EDQUOT)

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Real-time neural style transfer and super-resolution (Johnson et al. 2016).")
train_app = typer.Typer(no_args_is_help=True, help="Train transform nets with perceptual losses.")
app.add_typer(train_app, name="train")

VGG_HELP = "VGG-16 weights file (torchvision layout); default: $RTSTYLE_VGG16, the torch hub cache, then download."
PRECISION_HELP = ("auto (fp32; on a CPU int8 when built, checked and measured faster), fp32, fp16 (CUDA) "
                  "or int8 (CPU, ONNX Runtime; calibrated once on photos).")
DEVICE_HELP = "cpu, cuda, cuda:1 ... (default: CUDA if present)."
SIZE_HELP = "Stylize at exactly WIDTHxHEIGHT, then scale back."
STRENGTH_HELP = "Blend with the original: 0 = original, 1 = fully stylized."
PRESERVE_HELP = "Keep the source colours (stylize luminance only)."
STABILIZE_HELP = ("Temporal stabilisation: blend in the previous output moved by the input's optical flow "
                  "where the flow is consistent (occlusions and scene cuts take the fresh frame).")


# ---------------------------------------------------------------- training

@train_app.command("style")
def train_style(
    style_image: list[str] = typer.Argument(..., help="The style image; several train one multi-style net "
                                            "(conditional instance norm; each style named by its file)."),
    data: str = typer.Option(..., help="Folder of training photos (searched recursively)."),
    name: str = typer.Option(..., help="Model name; `--style NAME` finds it afterwards."),
    iterations: int = typer.Option(40000, help="Training steps (paper: 40,000)."),
    batch_size: int = typer.Option(4, help="Images per step (per process under torchrun)."),
    image_size: int = typer.Option(256, help="Training crop size in pixels."),
    style_size: Optional[int] = typer.Option(512, help="Resize the style image's longer side to this."),
    content_weight: Optional[float] = typer.Option(None, help="Weight of the feature loss at relu3_3 [default: losses.CONTENT_WEIGHT]."),
    style_weight: Optional[float] = typer.Option(None, help="Weight of the Gram style loss, relu1_2..relu4_3 [default: losses.STYLE_WEIGHT]."),
    tv_weight: Optional[float] = typer.Option(None, help="Weight of the total variation regulariser [default: losses.TV_WEIGHT]."),
    lr: float = typer.Option(1e-3, help="Adam learning rate."),
    out: Optional[str] = typer.Option(None, help="Model file to write (default: the user model folder)."),
    resume: bool = typer.Option(False, help="Continue from the last saved training state."),
    overwrite: bool = typer.Option(False, help="Replace an existing --out model file."),
    checkpoint_every: int = typer.Option(1000, help="Save the training state every N steps."),
    norm: str = typer.Option("instance", help="instance (Ulyanov et al.) or batch (paper)."),
    upsample: str = typer.Option("resize", help="resize (no checkerboard) or deconv (paper)."),
    width: float = typer.Option(1.0, help="Channel width multiplier (1.0 = paper; 0.5 for CPU real time)."),
    edge_kernel: int = typer.Option(9, help="Kernel of the first and last conv (paper: 9; 5 is cheaper on a CPU)."),
    balanced: bool = typer.Option(False, help="Normalise each Gram layer's distance by unchanged photos' distance "
                                  "to the painting, so one --style-weight suits every painting."),
    temporal: float = typer.Option(0.0, help="Weight of the temporal stability loss (Wang et al. 2020: a randomly "
                                   "warped and noised input must give the warped output); 0 = off."),
    add_to: Optional[str] = typer.Option(None, help="A multi-style model (e.g. zoo): write --name with its styles plus "
                                         "this one, fine-tuning only the new style's scales and shifts; the loss, "
                                         "sizes and architecture are that model's."),
    vgg_weights: Optional[str] = typer.Option(None, help=VGG_HELP),
    seed: int = typer.Option(0),
    workers: int = typer.Option(2, help="Data loading processes."),
    device: Optional[str] = typer.Option(None, help=DEVICE_HELP),
    amp: bool = typer.Option(True, help="bf16 mixed precision where the hardware has it (CUDA, AVX512-BF16/AMX CPUs)."),
) -> None:
    """Train a style transfer net (paper section 3.1 / 4.1)."""
    from rtstyle.train import StyleRecipe, train

    images = style_image[0] if len(style_image) == 1 else tuple(style_image)
    run = dict(out=out, resume=resume, checkpoint_every=checkpoint_every, vgg_weights=vgg_weights, workers=workers,
               device=device, overwrite=overwrite)
    if add_to:
        from rtstyle.train import add_style
        add_style(images, add_to, data, name, iterations=iterations, batch_size=batch_size, lr=lr, seed=seed, **run)
        return
    weights = {k: v for k, v in dict(content_weight=content_weight, style_weight=style_weight,
                                     tv_weight=tv_weight).items() if v is not None}
    recipe = StyleRecipe(images, data, name, iterations=iterations, batch_size=batch_size, image_size=image_size,
                         style_size=style_size, lr=lr, norm=norm, upsample=upsample, width=width,
                         edge_kernel=edge_kernel, balanced=balanced, temporal_weight=temporal, seed=seed, amp=amp,
                         **weights)
    train(recipe, **run)


@train_app.command("sr")
def train_sr(
    data: str = typer.Option(..., help="Folder of training photos."),
    scale: int = typer.Option(4, help="Upscaling factor: 4 or 8."),
    loss: str = typer.Option("feat", help="feat (relu2_2 feature loss) or pixel."),
    name: Optional[str] = typer.Option(None, help="Model name (default: sr_x{scale}_{loss})."),
    iterations: int = typer.Option(200000, help="Training steps (paper: 200,000)."),
    batch_size: int = typer.Option(4),
    patch_size: int = typer.Option(288, help="High-resolution patch size (paper: 288)."),
    tv_weight: float = typer.Option(0.0, help="Weight of the total variation regulariser."),
    lr: float = typer.Option(1e-3),
    out: Optional[str] = typer.Option(None),
    resume: bool = typer.Option(False),
    overwrite: bool = typer.Option(False, help="Replace an existing --out model file."),
    checkpoint_every: int = typer.Option(1000),
    width: float = typer.Option(1.0),
    vgg_weights: Optional[str] = typer.Option(None, help=VGG_HELP),
    seed: int = typer.Option(0),
    workers: int = typer.Option(2),
    device: Optional[str] = typer.Option(None),
    amp: bool = typer.Option(True, help="bf16 mixed precision where the hardware has it."),
    residual: bool = typer.Option(False, help="Add the bicubic upsampling to the output (not in the paper): "
                                  "starts at bicubic quality, for short trainings."),
    norm: str = typer.Option("batch", help="batch (paper), instance or none."),
    upsample: str = typer.Option("resize", help="resize (nearest x2 + conv: no checkerboard) or deconv (paper)."),
    taper: bool = typer.Option(False, help="Halve the channels at each upsampling (~2.5x less arithmetic)."),
    feat_weight: float = typer.Option(1.0, help="Weight of the relu2_2 feature loss (--loss feat)."),
    pixel_weight: Optional[float] = typer.Option(None, help="Weight of the pixel loss [default: 1 for --loss pixel, 0 for feat]."),
    lr_decay: str = typer.Option("none", help="none or cosine (to 0 at the last step)."),
    blur: float = typer.Option(0.0, help="Gaussian blur sigma of the training inputs before downsampling "
                               "(paper: 1.0; 0 matches the benchmarks' inputs)."),
    init: Optional[str] = typer.Option(None, help="Start from this SR model's weights (same architecture)."),
) -> None:
    """Train a super-resolution net (paper section 4.2)."""
    from rtstyle.train import SRRecipe, train

    recipe = SRRecipe(data, name or f"sr_x{scale}_{loss}", scale=scale, loss=loss, iterations=iterations,
                      batch_size=batch_size, patch_size=patch_size, feat_weight=feat_weight, pixel_weight=pixel_weight,
                      tv_weight=tv_weight, lr=lr, lr_decay=lr_decay, norm=norm, upsample=upsample, width=width,
                      residual=residual, taper=taper, blur=blur, init=init, seed=seed, amp=amp)
    train(recipe, out=out, resume=resume, checkpoint_every=checkpoint_every, vgg_weights=vgg_weights,
          workers=workers, device=device, overwrite=overwrite)


@app.command("styles")
def styles() -> None:
    """List the installed models (shipped with rtstyle, then your own trained ones)."""
    from rtstyle.models import list_models

    for name, path, meta in list_models():
        arch = meta["arch"]
        kind = f"sr x{arch['scale']}" if arch["kind"] == "sr" else f"style w{arch.get('width', 1.0)}"
        image = dict(zip(arch.get("styles", []), meta.get("style_images", []))).get(name)  # a multi-style file's
        print(f"{name:<20} {kind:<12} {image or meta.get('style_image', meta.get('recipe', {}).get('loss', '')):<28} {path}")


# ---------------------------------------------------------------- benchmarks (Gatys baseline, speed tables)

@app.command("gatys")
def gatys(
    content: str = typer.Argument(..., help="The content image."),
    style_image: str = typer.Option(..., "--style-image", help="The style image."),
    iterations: int = typer.Option(500, help="L-BFGS iterations; one = one update = one VGG-16 forward and backward pass."),
    size: int = typer.Option(512, help="Resize the content image's longer side to this (0: keep its size)."),
    style_size: Optional[int] = typer.Option(None, help="Resize the style image's longer side to this [default: as the content]."),
    init: str = typer.Option("content", help="Start from the content image (content) or from uniform noise (noise)."),
    out: Optional[str] = typer.Option(None, "-o", "--out", help="Output image [default: ./CONTENT-STEM.gatys.png]."),
    overwrite: bool = typer.Option(False, help="Replace an existing output file."),
    vgg_weights: Optional[str] = typer.Option(None, help=VGG_HELP),
    device: Optional[str] = typer.Option(None, help=DEVICE_HELP),
    seed: int = typer.Option(0, help="Seed of the noise initialisation."),
) -> None:
    """Stylise one image by optimisation (Gatys et al. 2016): the slow baseline of the paper's Table 1."""
    from pathlib import Path

    from rtstyle.gatys import stylise_file

    stylise_file(content, style_image, out or f"{Path(content).stem}.gatys.png", iterations=iterations,
                 size=size or None, style_size=style_size, init=init, vgg_weights=vgg_weights, device=device,
                 overwrite=overwrite, seed=seed)


def _ints(text: Optional[str], option: str) -> Optional[list[int]]:
    if not text:
        return None
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise RtstyleError(f"{option} takes comma-separated integers, not {text!r}") from None


@app.command("bench")
def bench(
    sizes: Optional[str] = typer.Option(None, help="Square image sizes [default: 256,512,1024; --quick: 64,256]."),
    iterations: Optional[str] = typer.Option(None, help="Gatys L-BFGS iteration counts [default: 100,300,500]."),
    backend: Optional[str] = typer.Option(None, help="Backends for the per-backend rows, comma-separated [default: all; --quick: torch]."),
    measured_iterations: Optional[int] = typer.Option(None, help="Gatys iterations timed per size, the rest projected [default: 3 on CPU; on CUDA all run]."),
    full: bool = typer.Option(False, help="Run every Gatys iteration instead of projecting (hours on a CPU)."),
    quick: bool = typer.Option(False, help="Small sizes and few frames: under a minute on 2 CPU cores."),
    resolutions: Optional[str] = typer.Option(None, help="Pipeline resolutions, e.g. 640x360,1280x720 ('none' skips the section)."),
    frames: Optional[int] = typer.Option(None, help="Pipeline clip frames at 1920x1080; smaller resolutions get proportionally more, up to 3x [default: 3 on CPU, 60 on CUDA]."),
    clip: Optional[str] = typer.Option(None, help="Video for the pipeline section [default: $RTSTYLE_SHARED/data/video/chaplin.mp4]."),
    device: Optional[str] = typer.Option(None, help=DEVICE_HELP),
    json_path: Optional[str] = typer.Option(None, "--json", help="Results JSON (Markdown beside it) [default: benchmarks/results/bench-DEVICE.json]."),
    plot_path: Optional[str] = typer.Option(None, "--plot", help="Speedup chart PNG (needs matplotlib) [default: beside the JSON]."),
) -> None:
    """The paper's Table 1 on this machine: Gatys et al. vs one feed-forward pass, per backend, and the video pipeline vs a naive loop."""
    from rtstyle.bench import bench as run

    res = None
    if resolutions is not None:
        try:
            res = [] if resolutions == "none" else [tuple(int(v) for v in r.lower().split("x")) for r in resolutions.split(",")]
        except ValueError:
            raise RtstyleError(f"--resolutions takes WIDTHxHEIGHT,... (e.g. 640x360,1280x720), not {resolutions!r}") from None
    run(sizes=_ints(sizes, "--sizes"), iterations=_ints(iterations, "--iterations"),
        backends=[b.strip() for b in backend.split(",")] if backend else None, measured_iterations=measured_iterations,
        full=full, quick=quick, resolutions=res, frames=frames, clip=clip, device=device, json_path=json_path,
        plot_path=plot_path)


# ---------------------------------------------------------------- camera

@app.command("cam")
def cam(
    source: str = typer.Option("0", help="Camera index, /dev/videoN, a stream URL (udp://, rtsp://, http://...) or a video file."),
    style: Optional[str] = typer.Option(None, help="Style model name or file to start with (default: the first installed)."),
    backend: str = typer.Option("auto", help="auto (fastest available), tensorrt, compile, onnxruntime or torch."),
    precision: str = typer.Option("auto", help=PRECISION_HELP),
    device: Optional[str] = typer.Option(None, help=DEVICE_HELP),
    window: bool = typer.Option(True, help="Show the preview window (keys: 1-9 style, space original, s snapshot, q quit)."),
    record: Optional[str] = typer.Option(None, help="Also record what is shown to this .mp4/.mov/.mkv (finalised on exit and on Ctrl-C)."),
    frames: Optional[int] = typer.Option(None, help="Stop after this many frames."),
    max_side: Optional[int] = typer.Option(None, help="Run the net at most this many pixels on the longer side (faster)."),
    overwrite: bool = typer.Option(False, help="Replace an existing --record file."),
    retries: int = typer.Option(5, help="Reconnect attempts in a row when a live source drops (backoff 0.5 s, doubling, max 8 s)."),
    timeout: float = typer.Option(5.0, help="Seconds without data before a stream counts as unavailable or dropped."),
    stabilize: bool = typer.Option(False, help=STABILIZE_HELP),
) -> None:
    """Stylize a live camera or stream, processing always the newest frame (stale ones are dropped)."""
    from rtstyle.camera import run

    run(source, style, backend=backend, precision=precision, device=device, window=window, record=record,
        frames=frames, max_side=max_side, overwrite=overwrite, retries=retries, timeout=timeout, stabilize=stabilize)


# ---------------------------------------------------------------- evaluation

eval_app = typer.Typer(no_args_is_help=True, help="Measure models against the paper's tables (SR PSNR/SSIM, style vs Gatys).")
app.add_typer(eval_app, name="eval")


@eval_app.command("sr")
def eval_sr(
    set_dir: str = typer.Option(..., "--set", help="Folder of HR ground-truth images (Set5, Set14, BSD100)."),
    scale: int = typer.Option(4, help="Upscaling factor: 4 or 8."),
    model: str = typer.Option("bicubic", help="SR model name or file; bicubic alone if 'bicubic' (always shown)."),
    blur: float = typer.Option(0.0, help="Gaussian blur sigma before downsampling (1.0 = the training degradation; "
                                         "0 = the SR literature's benchmark LR)."),
    json: Optional[str] = typer.Option(None, "--json", help="Also write the per-image and mean scores to this JSON file."),
    overwrite: bool = typer.Option(False, help="Replace an existing --json file."),
    backend: str = typer.Option("torch", help="Inference backend for the model."),
    device: Optional[str] = typer.Option(None, help=DEVICE_HELP),
) -> None:
    """PSNR / SSIM on Y of x4 / x8 super-resolution beside the paper's (Johnson et al. 2016, section 4.2)."""
    from rtstyle.evaluate import eval_sr as run

    run(set_dir, scale, model, blur=blur, device=device, backend=backend, json_path=json, overwrite=overwrite)


@eval_app.command("style")
def eval_style(
    style: str = typer.Option(..., help="Style model name or file."),
    content: str = typer.Option(..., help="Folder of held-out photos (e.g. BSD100; never the training photos)."),
    gatys_iterations: str = typer.Option("50,100,300,500", help="L-BFGS iteration counts to compare against."),
    size: int = typer.Option(256, help="Centre square crop size in pixels (paper: 256-1024; CPU: keep it small)."),
    images: int = typer.Option(2, help="How many photos of --content to use (the first N, sorted)."),
    init: str = typer.Option("noise", help="Start L-BFGS from noise (Gatys et al., the paper) or from the content photo."),
    style_image: Optional[str] = typer.Option(None, help="The style image [default: $RTSTYLE_SHARED/data/styles/ + the model card's]."),
    json: Optional[str] = typer.Option(None, "--json", help="Also write the results to this JSON file."),
    plot: Optional[str] = typer.Option(None, help="Write the objective-vs-iterations plot to this PNG/SVG/PDF."),
    overwrite: bool = typer.Option(False, help="Replace existing --json / --plot files."),
    vgg_weights: Optional[str] = typer.Option(None, help=VGG_HELP),
    device: Optional[str] = typer.Option(None, help=DEVICE_HELP),
) -> None:
    """The training objective of a net's output vs Gatys et al.'s L-BFGS after N iterations (paper Figure 5).

    Costly on a CPU: every L-BFGS iteration is a VGG-16 forward and backward pass (about 3 s at 256x256
    on 2 cores), so the defaults take about 25 minutes per image there.
    """
    from rtstyle.evaluate import eval_style as run

    try:
        counts = tuple(int(v) for v in gatys_iterations.split(","))
    except ValueError:
        raise RtstyleError(f"--gatys-iterations must be comma-separated counts like 50,100,300,500, not {gatys_iterations!r}") from None
    run(style, content, gatys_iterations=counts, size=size, images=images, init=init, style_image=style_image,
        json_path=json, plot_path=plot, overwrite=overwrite, vgg_weights=vgg_weights, device=device)


@eval_app.command("flicker")
def eval_flicker(
    style: str = typer.Option("candy,mosaic,udnie", help="Comma-separated style model names or files."),
    clips: Optional[list[str]] = typer.Option(None, "--clip", help="Video to measure (repeatable) [default: $RTSTYLE_SHARED/data/video/*]."),
    pan: Optional[str] = typer.Option(None, help="Photo for the synthetic pan (exact known motion) [default: $RTSTYLE_SHARED/data/content/chicago.jpg]; 'none' to skip."),
    frames: int = typer.Option(30, help="Frames per clip (the first N)."),
    side: int = typer.Option(320, help="Downscale frames to at most this many pixels on the longer side (the net runs there)."),
    style_every: int = typer.Option(6, help="Style loss on every N-th frame (0: skip the style loss and VGG)."),
    json: Optional[str] = typer.Option(None, "--json", help="Write the results to this JSON file."),
    plot: Optional[str] = typer.Option(None, help="Write the bar chart to this PNG."),
    overwrite: bool = typer.Option(False, help="Replace existing --json / --plot files."),
    backend: str = typer.Option("auto", help="Inference backend for the style nets."),
    vgg_weights: Optional[str] = typer.Option(None, help=VGG_HELP),
    device: Optional[str] = typer.Option(None, help=DEVICE_HELP),
) -> None:
    """Warping error (flicker) of stylized video, per-frame vs --stabilize, beside the input's own error.

    Farneback flow on the input frames with a forward-backward consistency mask; exact flow on the pan.
    """
    from pathlib import Path

    from rtstyle.flicker import eval_flicker as run

    shared = os.environ.get("RTSTYLE_SHARED")
    if pan is None and shared:
        pan = str(Path(shared) / "data" / "content" / "chicago.jpg")
    run([s.strip() for s in style.split(",") if s.strip()], [Path(c) for c in clips] if clips else None,
        Path(pan) if pan and pan != "none" else None, frames=frames, side=side, style_every=style_every,
        json_path=json, plot_path=plot, overwrite=overwrite, backend=backend, vgg_weights=vgg_weights, device=device)


# ---------------------------------------------------------------- backends (ONNX export, TensorRT engines)

@app.command("export")
def export_model(
    style: str = typer.Option(..., help="Model name or model file (style or SR)."),
    fmt: str = typer.Option("onnx", "--format", help="onnx (a file) or tensorrt (an engine in the engine folder)."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="ONNX file to write (default: NAME.onnx)."),
    precision: Optional[str] = typer.Option(None, help="fp32, fp16 or int8 (onnx only) [default: fp32 for onnx, fp16 for tensorrt]."),
    min_hw: Optional[str] = typer.Option(None, "--min", help="Smallest input HxW of the engine's profile [32x32]."),
    opt_hw: Optional[str] = typer.Option(None, "--opt", help="Input HxW the engine is tuned for [720x1280]."),
    max_hw: Optional[str] = typer.Option(None, "--max", help="Largest input HxW of the engine's profile [1088x1920]."),
    max_batch: int = typer.Option(4, help="Largest batch of the engine's profile."),
    overwrite: bool = typer.Option(False, help="Replace an existing ONNX file / rebuild a cached engine."),
) -> None:
    """Export a model as one self-contained ONNX file (dynamic batch, height, width), or build its
    TensorRT engine into the engine folder ($RTSTYLE_ENGINE_DIR, default ~/.cache/rtstyle/engines)."""
    from rtstyle.export import export

    print(export(style, fmt, output, precision, {"min": min_hw, "opt": opt_hw, "max": max_hw}, max_batch, overwrite))


# ---------------------------------------------------------------- video files and images

BACKEND_HELP = "auto (fastest available), tensorrt, compile, onnxruntime or torch."
OUTPUT_HELP = "Output file (default: IN-STEM.NAME.EXT beside the input)."


def _frame_options(max_side: Optional[int] = None, size: Optional[str] = None, strength: float = 1.0,
                   preserve_color: bool = False, side_by_side: bool = False, tile: Optional[int] = None,
                   stabilize: bool = False):
    from rtstyle.frames import Options, parse_size

    return Options(max_side=max_side, size=parse_size(size), strength=strength, preserve_color=preserve_color,
                   side_by_side=side_by_side, tile=tile, stabilize=stabilize)


@app.command("video")
def video(
    input: str = typer.Argument(..., help="Video file (any container/codec FFmpeg reads)."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="Output video (default: IN-STEM.NAME.mp4 beside the input)."),
    style: str = typer.Option(..., help="Style model name or model file."),
    backend: str = typer.Option("auto", help=BACKEND_HELP),
    precision: str = typer.Option("auto", help=PRECISION_HELP),
    device: Optional[str] = typer.Option(None, help=DEVICE_HELP),
    max_side: Optional[int] = typer.Option(None, help="Stylize at most this many pixels on the longer side, then scale back (faster, coarser strokes)."),
    size: Optional[str] = typer.Option(None, help=SIZE_HELP),
    strength: float = typer.Option(1.0, help=STRENGTH_HELP),
    preserve_color: bool = typer.Option(False, help=PRESERVE_HELP),
    side_by_side: bool = typer.Option(False, help="Write original | stylized."),
    codec: Optional[str] = typer.Option(None, help="h264 (default), hevc, vp9, av1, or an FFmpeg encoder name (h264_nvenc ...)."),
    crf: Optional[int] = typer.Option(None, help="Constant quality (lower = better; default 18 for h264)."),
    batch: int = typer.Option(1, help="Frames per inference call."),
    overwrite: bool = typer.Option(False, help="Replace an existing output file."),
    stabilize: bool = typer.Option(False, help=STABILIZE_HELP),
) -> None:
    """Stylize every frame of a video, keeping its timestamps, rotation and audio."""
    from rtstyle.stream import video_command

    video_command(input, output, style, "style", backend, precision, device,
                  _frame_options(max_side, size, strength, preserve_color, side_by_side, stabilize=stabilize),
                  codec, crf, batch, overwrite)


@app.command("upscale")
def upscale(
    input: str = typer.Argument(..., help="Image or video (decided by content)."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help=OUTPUT_HELP + " Videos are written as .mp4."),
    scale: Optional[int] = typer.Option(None, help="4 or 8: picks sr_x4_pixel or sr_x8_feat (the shipped nets that looked best) [default: 4]."),
    model: Optional[str] = typer.Option(None, help="SR model name or model file (instead of --scale)."),
    tile: Optional[int] = typer.Option(None, help="Process in overlapping tiles of N input pixels (large frames, bounded memory; seamless)."),
    side_by_side: bool = typer.Option(False, help="Write bicubic | super-resolved."),
    backend: str = typer.Option("auto", help=BACKEND_HELP),
    precision: str = typer.Option("auto", help=PRECISION_HELP),
    device: Optional[str] = typer.Option(None, help=DEVICE_HELP),
    codec: Optional[str] = typer.Option(None, help="Video encoder (see `rtstyle video --help`)."),
    crf: Optional[int] = typer.Option(None, help="Video constant quality."),
    batch: int = typer.Option(1, help="Video frames per inference call."),
    overwrite: bool = typer.Option(False, help="Replace an existing output file."),
) -> None:
    """Super-resolution (x4 / x8) of an image or a video."""
    from rtstyle.stream import upscale_command

    if scale is not None and scale not in (4, 8):
        raise RtstyleError(f"--scale must be 4 or 8, not {scale}")
    from rtstyle.models import DEFAULT_SR

    upscale_command(input, output, model or DEFAULT_SR[scale or 4], backend, precision, device,
                    _frame_options(side_by_side=side_by_side, tile=tile), codec, crf, batch, overwrite,
                    scale=scale if model else None)


@app.command("stylize")
def stylize(
    inputs: list[str] = typer.Argument(..., help="Images and folders of images."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="Output image, or folder for several inputs "
                                         "(default: STEM.NAME.EXT beside each image; folder DIR -> DIR.NAME/)."),
    style: str = typer.Option(..., help="Style model name or model file."),
    backend: str = typer.Option("auto", help=BACKEND_HELP),
    precision: str = typer.Option("auto", help=PRECISION_HELP),
    device: Optional[str] = typer.Option(None, help=DEVICE_HELP),
    max_side: Optional[int] = typer.Option(None, help="Stylize at most this many pixels on the longer side, then scale back."),
    size: Optional[str] = typer.Option(None, help=SIZE_HELP),
    strength: float = typer.Option(1.0, help=STRENGTH_HELP),
    preserve_color: bool = typer.Option(False, help=PRESERVE_HELP),
    side_by_side: bool = typer.Option(False, help="Write original | stylized."),
    overwrite: bool = typer.Option(False, help="Replace existing output files."),
) -> None:
    """Stylize images and folders of images."""
    from rtstyle.stream import images_command

    images_command(inputs, output, style, "style", backend, precision, device,
                   _frame_options(max_side, size, strength, preserve_color, side_by_side), overwrite)


# ---------------------------------------------------------------- demo

@app.command("demo")
def demo(
    out: str = typer.Option("out/demo", help="Folder for the synthetic clip and the results."),
    style: str = typer.Option("candy", help="Shipped style to use."),
    backend: str = typer.Option("auto", help=BACKEND_HELP),
) -> None:
    """Synthesize a clip and stylize it with a shipped style (what `make demo` runs)."""
    from pathlib import Path

    from rtstyle.demo import run_demo

    run_demo(Path(out), style, backend)


# ---------------------------------------------------------------- entry point

def main(argv: list[str] | None = None) -> int:
    """Run the CLI; turn every expected failure into one line on stderr and a non-zero exit code.

    Usage errors (unknown option, missing argument, bad value) are one line like every other error
    (exit 2); Ctrl-C exits 130, and SIGTERM and SIGHUP act as Ctrl-C does (exit 143, 129).
    """
    from rtstyle import interrupt

    _standard_streams()
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
        return _error(f"{' '.join(e.format_message().split())}{where}", 2)
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
