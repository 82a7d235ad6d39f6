"""``rtstyle bench``: the paper's speed table (Johnson et al. 2016, Table 1) measured on this machine.

Three measurements, in one run so that their ratios are fair on a shared or noisy machine:

1. Gatys et al.'s optimisation (``rtstyle.gatys``): seconds for 100/300/500 L-BFGS iterations at each
   size, after warm-up iterations. On a CPU, by default, K iterations are measured and the rest
   projected linearly (cells marked "projected"); ``--full`` runs them all, as the default does on CUDA.
2. One feed-forward pass of the full-width style net, per backend and precision: the median of
   repeats after warm-up, synchronised on CUDA.
3. End to end on a real clip scaled to 640x360, 1280x720 and 1920x1080: rtstyle's pipeline
   (``rtstyle.stream.run_video``) against the loop a user would write (decode a frame, eager fp32
   PyTorch, encode, one frame at a time), same net, same weights, same encoder settings.

Neither timing depends on the weights' values, so VGG-16 and the style net are randomly initialised
(He initialisation, which keeps activations at the scale of trained ones); the output says so.
"""
from __future__ import annotations

import copy
import datetime
import json
import os
import platform
import re
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from torch import nn

from rtstyle import stream
from rtstyle.backends import BACKENDS, PRECISIONS, load_backend, resolve_device
from rtstyle.errors import RtstyleError, progress as progress_bar
from rtstyle.frames import Options
from rtstyle.gatys import optimise
from rtstyle.imageio import to_image, to_tensor
from rtstyle.models import Model
from rtstyle.nets import build_net
from rtstyle.outputs import atomic_output, check_output
from rtstyle.paper import TABLE1, TABLE1_DEVICE
from rtstyle.vgg import STYLE_LAYERS, VGG16Features
from rtstyle.writer import VideoWriter

NET_ARCH = {"kind": "style", "norm": "instance", "upsample": "resize", "width": 1.0}
RESOLUTIONS = ((640, 360), (1280, 720), (1920, 1080))
QUICK_RESOLUTIONS = ((160, 96), (320, 180))
RANDOM_WEIGHTS = "random (He-initialised) VGG-16 and style net weights: timing does not depend on their values"

clock = time.perf_counter  # tests replace it with a fake clock


@dataclass
class Settings:
    """What to measure; ``defaults`` fills in what suits the device."""

    sizes: list[int]
    iterations: list[int]
    measured_iterations: int     # K: Gatys iterations timed per size (the rest are projected)
    warmup_iterations: int       # Gatys iterations run before timing starts
    full: bool                   # run every Gatys iteration instead of projecting
    ff_warmup: int               # feed-forward passes before timing
    ff_repeats: int              # timed feed-forward passes (the median is reported)
    backends: list[str]          # backend rows; every name in rtstyle.backends.BACKENDS but "auto" by default
    opt_in: list[str]            # backends listed but not run unless named in --backend (see ``defaults``)
    resolutions: list[tuple[int, int]]
    frames: int                  # clip frames at 1920x1080 for the pipeline section (see ``frames_at``)
    clip: str | None             # None: $RTSTYLE_SHARED/data/video/chaplin.mp4
    device: str
    quick: bool = False
    seed: int = 0


def defaults(device: torch.device, quick: bool = False) -> dict:
    """Settings that keep a run bounded: ``--quick`` < 1 min on 2 CPU cores, the default < 15 min there."""
    cuda = device.type == "cuda"
    # torch.compile on a CPU spends 20-30 s compiling each shape (minutes here), which alone would
    # break the time budget; its row says how to include it. On CUDA all 500 Gatys iterations take
    # seconds to minutes, so they all run: projecting would miss L-BFGS's growing history cost there.
    base = dict(opt_in=[] if cuda else ["compile"], full=cuda,
                sizes=[256, 512, 1024], iterations=[100, 300, 500], measured_iterations=20 if cuda else 3,
                warmup_iterations=3 if cuda else 1, ff_warmup=10 if cuda else 1, ff_repeats=50 if cuda else 5,
                resolutions=list(RESOLUTIONS), frames=60 if cuda else 3)
    if quick:
        base.update(sizes=[64, 256], full=False, measured_iterations=2, warmup_iterations=1, ff_warmup=1, ff_repeats=3,
                    resolutions=list(QUICK_RESOLUTIONS), frames=2)
    return base


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    threads = torch.get_num_threads()
    return f"CPU: {model}, {os.cpu_count()} cores, torch using {threads} thread{'s' if threads > 1 else ''}"


def _he_init(module: nn.Module, seed: int) -> nn.Module:
    """Random weights at the scale of trained ones (He et al. 2015), so activations neither vanish into
    denormals (slow on CPUs) nor blow up."""
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            fan_in = m.weight[0].numel()
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.zero_()
    return module


def random_vgg(device: torch.device, seed: int = 0):
    return _he_init(VGG16Features(STYLE_LAYERS), seed).requires_grad_(False).eval().to(device)


def random_net(seed: int = 0) -> tuple[nn.Module, dict]:
    """The full-width style net (the paper's channel counts, rtstyle's default norm and upsampling)."""
    return _he_init(build_net(NET_ARCH), seed).eval(), {"name": "bench-random", "arch": dict(NET_ARCH)}


# ---------------------------------------------------------------- measurements

def time_gatys(size: int, iterations: list[int], measured: int, warmup: int, full: bool, device: torch.device,
               seed: int = 0) -> dict:
    """Seconds for each count in ``iterations`` of L-BFGS on a ``size`` x ``size`` image.

    Runs ``warmup`` iterations, then times ``measured`` more (all of ``max(iterations)`` with ``full``);
    counts beyond what was timed are projected from the mean time per timed iteration. The one-off
    computation of the content and style targets is not counted (it is not an iteration).
    """
    timed = max(iterations) if full else min(measured, max(iterations))
    gen = torch.Generator().manual_seed(seed)
    content, style = torch.rand(2, 1, 3, size, size, generator=gen)
    stamps: list[float] = []

    def stamp(i: int, terms: dict, y: torch.Tensor) -> None:
        _sync(device)
        stamps.append(clock())

    vgg = random_vgg(device, seed)
    optimise(content, style, warmup + timed, vgg=vgg, callback=stamp, progress=False)
    # stamps[i] is taken after iteration i + 1: the timed ones lie between stamps[warmup - 1] and stamps[-1].
    start = stamps[warmup - 1] if warmup else None
    if start is None:
        raise ValueError("at least one warm-up iteration is needed to start the clock after it")
    per_iteration = (stamps[-1] - start) / timed
    cells = {}
    for n in iterations:
        if n <= timed:
            cells[n] = {"seconds": stamps[warmup - 1 + n] - start, "projected": False}
        else:
            cells[n] = {"seconds": per_iteration * n, "projected": True}
    return {"size": size, "timed_iterations": timed, "warmup_iterations": warmup,
            "seconds_per_iteration": per_iteration, "iterations": cells}


def time_feedforward(backend, size: int, warmup: int, repeats: int, seed: int = 0) -> dict:
    """Median seconds of one forward pass on a 1x3x``size``x``size`` input already on the device."""
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed)).to(backend.device)
    t0 = clock()
    for _ in range(warmup):
        backend(x)
    _sync(backend.device)
    warmup_seconds = clock() - t0
    samples = []
    for _ in range(repeats):
        t0 = clock()
        backend(x)
        _sync(backend.device)
        samples.append(clock() - t0)
    return {"seconds": statistics.median(samples), "samples": samples, "warmup_seconds": warmup_seconds}


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{e.__class__.__name__}: {text}" if not isinstance(e, RtstyleError) else text


def load_backend_row(net: nn.Module, meta: dict, backend: str, precision: str, device: torch.device):
    """(backend object, None) or (None, why it is not available here)."""
    try:
        return load_backend(net, meta, backend=backend, device=device, precision=precision), None
    except Exception as e:  # a missing package, no GPU, a failed export: all mean "not here", with the reason
        return None, _reason(e)


# ---------------------------------------------------------------- pipeline vs naive loop

# Both loops encode with what rtstyle.stream uses by default, so that the ratio measures the pipeline,
# not the encoder preset.
ENCODER = "libx264"
ENCODER_OPTIONS = {"preset": "veryfast", "crf": "18"}


def scaled_clip(src: Path, dst: Path, width: int, height: int, frames: int) -> int:
    """The first ``frames`` frames of ``src`` scaled to ``width`` x ``height`` (video only), as H.264. Returns
    the frame count written."""
    n = _reencode(src, dst, lambda f: f.reformat(width=width, height=height, format="yuv420p"),
                  {"preset": "veryfast", "crf": "12"}, (width, height), frames)
    if n == 0:
        raise RtstyleError(f"{src} has no video frames")
    return n


def naive_frame(net: nn.Module, rgb, device: torch.device):
    """One frame the way a user would: HxWx3 uint8 -> tensor -> eager fp32 net -> HxWx3 uint8."""
    with torch.no_grad():
        return to_image(net(to_tensor(rgb).to(device)))


def naive_loop(net: nn.Module, src: Path, dst: Path, device: torch.device) -> int:
    """What a user would write: decode a frame, run the net in eager fp32 PyTorch, encode, one at a time."""
    def stylize(frame: av.VideoFrame) -> av.VideoFrame:
        return av.VideoFrame.from_ndarray(naive_frame(net, frame.to_ndarray(format="rgb24"), device), format="rgb24")

    return _reencode(src, dst, stylize, dict(ENCODER_OPTIONS))


def _reencode(src: Path, dst: Path, convert, options: dict, size: tuple[int, int] | None = None,
              frames: int | None = None) -> int:
    """Decode ``src``'s video one frame at a time, ``convert`` it and encode it as H.264 at the source's
    rate (the first ``frames`` frames); returns the count written."""
    n = 0
    with av.open(str(src)) as inp:
        vin = inp.streams.video[0]
        rate = vin.average_rate or Fraction(25)
        out = VideoWriter(dst)
        try:
            vout = out.add_video(ENCODER, rate, *(size or (vin.width, vin.height)), 1 / rate, options)
            for frame in inp.decode(vin):
                if n == frames:
                    break
                converted = convert(frame)
                converted.pts, converted.time_base = n, 1 / rate
                out.mux(vout.encode(converted))
                n += 1
            out.finish()
        finally:
            out.close()
    return n


def _frame_count(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def default_clip() -> Path | None:
    root = os.environ.get("RTSTYLE_SHARED")
    return Path(root) / "data" / "video" / "chaplin.mp4" if root else None


def frames_at(width: int, height: int, frames: int) -> int:
    """Clip frames to use at ``width`` x ``height``: ``frames`` at 1920x1080, proportionally more (up to
    3x) at smaller sizes, so that each resolution runs for a similar time and cheap ones are not a few
    seconds at the mercy of other processes' load."""
    return min(3 * frames, max(frames, round(frames * 1920 * 1080 / (width * height))))


def time_pipeline(net: nn.Module, meta: dict, clip: Path, resolutions: list[tuple[int, int]], frames: int,
                  device: torch.device, tick=lambda desc: None) -> list[dict]:
    """End-to-end fps of rtstyle's pipeline and of the naive loop on ``clip`` at each resolution.

    Both get the same scaled clip, the same net and weights (ours through the ``auto`` backend, fp16 on
    CUDA), and a warm-up forward pass at that resolution first; timing covers opening the input to
    closing the output.
    """
    precision = "fp16" if device.type == "cuda" else "fp32"
    ours = load_backend(copy.deepcopy(net), meta, backend="auto", device=device, precision=precision)
    naive_net = copy.deepcopy(net).float().eval().to(device)  # the same weights, in eager fp32
    rows = []
    with tempfile.TemporaryDirectory(prefix="rtstyle-bench-") as tmp:
        for w, h in resolutions:
            src = Path(tmp) / f"clip_{w}x{h}.mp4"
            n = scaled_clip(clip, src, w, h, frames_at(w, h, frames))
            tick(f"pipeline {w}x{h} naive")
            naive_frame(naive_net, np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8), device)
            t0 = clock()
            naive_frames = naive_loop(naive_net, src, Path(tmp) / "naive.mp4", device)
            _sync(device)
            naive_s = clock() - t0
            tick(f"pipeline {w}x{h} rtstyle")
            ours(torch.rand(1, 3, h, w, device=device))
            _sync(device)
            t0 = clock()
            report = stream.run_video(src, Path(tmp) / "ours.mp4", Model.wrap(ours, meta), Options(), overwrite=True,
                                      progress=False)
            ours_s = clock() - t0
            written = _frame_count(Path(tmp) / "ours.mp4")
            if not naive_frames == report.frames == written == n:
                raise RtstyleError(f"frame counts differ at {w}x{h}: clip {n}, naive {naive_frames}, "
                                   f"rtstyle {report.frames} ({written} written)")
            naive_fps, ours_fps = n / naive_s, n / ours_s
            rows.append({"resolution": f"{w}x{h}", "frames": n, "naive_seconds": naive_s, "naive_fps": naive_fps,
                         "rtstyle_seconds": ours_s, "rtstyle_fps": ours_fps, "ratio": ours_fps / naive_fps,
                         "rtstyle_net_fps": report.net_fps, "rtstyle_backend": f"{ours.name} {precision}"})
    return rows


# ---------------------------------------------------------------- the run

def speedups(gatys: dict, ff_seconds: float) -> dict[int, float]:
    """Gatys seconds / feed-forward seconds, per iteration count: what Table 1 calls the speedup."""
    return {n: cell["seconds"] / ff_seconds for n, cell in gatys["iterations"].items()}


def _combos(backends: list[str]) -> list[tuple[str, str]]:
    """(backend, precision) rows to measure; eager fp32 always, since Table 1's "ours" is eager fp32,
    as in the paper."""
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise RtstyleError(f"unknown backend {unknown[0]!r}; choose from {', '.join(b for b in BACKENDS if b != 'auto')}")
    combos = [(b, p) for b in backends for p in PRECISIONS if p in ("fp32", "fp16")]
    if ("torch", "fp32") not in combos:
        combos.insert(0, ("torch", "fp32"))
    return combos


def _pipeline_skip(s: Settings, clip: Path | None) -> str | None:
    """Why the pipeline section cannot run, or None."""
    if not s.resolutions:
        return "no resolutions asked for"
    if clip is None:
        return "no clip: set RTSTYLE_SHARED (for data/video/chaplin.mp4) or pass --clip"
    if not clip.is_file():
        return f"clip not found: {clip}"
    return None


def _load_backends(net: nn.Module, meta: dict, combos: list[tuple[str, str]], opt_in: list[str],
                   device: torch.device) -> dict[tuple[str, str], tuple]:
    """{(backend, precision): (backend or None, why not, seconds to load)}."""
    loaded = {}
    for b, p in combos:
        t0 = clock()
        if b in opt_in:
            backend, why = None, (f"not run by default on {device.type}: it compiles each input shape for "
                                  "20-30 s or more; name it in --backend to include it")
        else:
            backend, why = load_backend_row(copy.deepcopy(net), meta, b, p, device)
        loaded[(b, p)] = (backend, why, clock() - t0)
    return loaded


def _measure_size(size: int, s: Settings, loaded: dict, device: torch.device, rows: list, bar) -> dict:
    """Gatys and every backend at one size: the backend rows go to ``rows``; returns the Table 1 row."""
    bar.set_description(f"gatys {size}x{size}")
    gatys = time_gatys(size, s.iterations, s.measured_iterations, s.warmup_iterations, s.full, device, s.seed)
    bar.update()
    for (b, p), (backend, why, setup) in loaded.items():
        bar.set_description(f"feed-forward {size}x{size} {b} {p}")
        row = {"size": size, "backend": b, "precision": p}
        if backend is None:
            row["skipped"] = why
        else:
            try:
                ff = time_feedforward(backend, size, s.ff_warmup, s.ff_repeats, s.seed)
                row.update(seconds=ff["seconds"], samples=ff["samples"], fps=1.0 / ff["seconds"],
                           warmup_seconds=ff["warmup_seconds"], load_seconds=setup,
                           speedup=speedups(gatys, ff["seconds"]))
            except Exception as e:  # e.g. out of memory at 1024 on a small GPU: report, go on
                row["skipped"] = _reason(e)
        rows.append(row)
        bar.update()
    ours = next(r for r in rows if r["size"] == size and (r["backend"], r["precision"]) == ("torch", "fp32"))
    if "skipped" in ours:
        raise RtstyleError(f"eager fp32 PyTorch failed at {size}x{size}: {ours['skipped']}")
    paper = TABLE1.get(size)
    return {"size": size, "gatys": gatys, "ours_seconds": ours["seconds"], "ours_samples": ours["samples"],
            "speedup": ours["speedup"],
            "paper": None if paper is None else {"gatys": paper["gatys"], "ours": paper["ours"],
                                                 "speedup": paper["speedup"]}}


def run(s: Settings, progress: bool = True) -> dict:
    """Measure everything ``s`` asks for; returns the results (see ``write_results`` for the files)."""
    device = torch.device(s.device)
    combos = _combos(s.backends)
    clip = Path(s.clip) if s.clip else default_clip()
    pipeline_skip = _pipeline_skip(s, clip)
    total = len(s.sizes) * (1 + len(combos)) + (0 if pipeline_skip else 2 * len(s.resolutions))
    bar = progress_bar(total=total, unit="task", disable=not progress, dynamic_ncols=True, desc="bench")
    started = clock()
    net, meta = random_net(s.seed)
    loaded = _load_backends(net, meta, combos, s.opt_in, device)
    table1, rows = [], []
    for size in s.sizes:
        table1.append(_measure_size(size, s, loaded, device, rows, bar))
    pipeline: dict = {"clip": str(clip) if clip else None, "frames": s.frames}
    if pipeline_skip:
        pipeline["skipped"] = pipeline_skip
    else:
        phases = iter(range(2 * len(s.resolutions)))

        def tick(desc: str) -> None:  # a pipeline phase starts, so the previous one is done
            if next(phases):
                bar.update()
            bar.set_description(desc)

        pipeline["rows"] = time_pipeline(net, meta, clip, s.resolutions, s.frames, device, tick)
        bar.update(total - bar.n)
    bar.close()

    return {
        "device": device_name(device), "device_type": device.type, "torch": torch.__version__,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "weights": RANDOM_WEIGHTS, "net": meta["arch"], "command": command_line(s),
        "settings": asdict(s),
        "table1": table1, "backends": rows, "pipeline": pipeline, "paper_device": TABLE1_DEVICE,
        "wall_seconds": clock() - started,
        "iteration": "one L-BFGS update = one VGG-16 forward and backward pass (torch.optim.LBFGS, no line search)",
    }


def command_line(s: Settings) -> str:
    parts = ["rtstyle bench"]
    if s.quick:
        parts.append("--quick")
    parts += [f"--sizes {','.join(map(str, s.sizes))}", f"--iterations {','.join(map(str, s.iterations))}"]
    parts.append("--full" if s.full else f"--measured-iterations {s.measured_iterations}")
    parts.append(f"--backend {','.join(b for b in s.backends if b not in s.opt_in)}")
    parts.append(f"--device {s.device}")
    return " ".join(parts)


# ---------------------------------------------------------------- reporting

def _secs(x: float) -> str:
    return f"{x:.3f} s" if x < 1 else f"{x:.2f} s" if x < 100 else f"{x:.0f} s"


def _cell(cell: dict) -> str:
    return _secs(cell["seconds"]) + (" projected" if cell["projected"] else "")


def table1_rows(results: dict) -> list[list[str]]:
    """The paper's layout: size, source, Gatys 100/300/500, ours, speedups; a paper row under each size."""
    out = []
    for r in results["table1"]:
        its = list(r["gatys"]["iterations"])
        size = f"{r['size']}x{r['size']}"
        out.append([size, "measured", *(_cell(r["gatys"]["iterations"][n]) for n in its), _secs(r["ours_seconds"]),
                    *(f"{r['speedup'][n]:.0f}x" for n in its)])
        p = r["paper"]
        if p:
            out.append([size, "paper (Titan X)", *(f"{p['gatys'][n]} s" if n in p["gatys"] else "-" for n in its),
                        f"{p['ours']} s", *(f"{p['speedup'][n]}x" if n in p["speedup"] else "-" for n in its)])
    return out


def table1_header(results: dict) -> list[str]:
    its = list(results["table1"][0]["gatys"]["iterations"]) if results["table1"] else []
    return ["size", "", *(f"Gatys {n}" for n in its), "ours", *(f"speedup {n}" for n in its)]


def backend_rows(results: dict) -> list[list[str]]:
    """The measured backend rows; what was not measured is listed once by ``not_measured``."""
    out = []
    for r in results["backends"]:
        if "skipped" not in r:
            sp = " / ".join(f"{v:.0f}x" for v in r["speedup"].values())
            out.append([f"{r['size']}x{r['size']}", r["backend"], r["precision"], _secs(r["seconds"]),
                        f"{r['fps']:.2f}", sp, f"{r['load_seconds']:.1f} s", f"{r['warmup_seconds']:.1f} s"])
    return out


def not_measured(results: dict) -> list[str]:
    """'backend precision: why' for each combination skipped, once (with its sizes when not all)."""
    sizes = [r["size"] for r in results["table1"]]
    seen: dict[tuple[str, str, str], list[int]] = {}
    for r in results["backends"]:
        if "skipped" in r:
            seen.setdefault((r["backend"], r["precision"], r["skipped"]), []).append(r["size"])
    return [f"{b} {p}: {why}" + ("" if at == sizes else f" (at {', '.join(map(str, at))})")
            for (b, p, why), at in seen.items()]


BACKEND_HEADER = ["size", "backend", "precision", "forward (median)", "fps", "speedup vs Gatys 100/300/500",
                  "load", "warm-up"]
PIPELINE_HEADER = ["resolution", "frames", "naive loop fps", "rtstyle fps", "rtstyle / naive", "rtstyle net fps",
                   "rtstyle backend"]


def pipeline_rows(results: dict) -> list[list[str]]:
    return [[r["resolution"], str(r["frames"]), f"{r['naive_fps']:.2f}", f"{r['rtstyle_fps']:.2f}",
             f"{r['ratio']:.2f}x", f"{r['rtstyle_net_fps']:.2f}", r["rtstyle_backend"]]
            for r in results["pipeline"].get("rows", [])]


def _notes(results: dict) -> list[str]:
    s = results["settings"]
    notes = [f"{results['device']}; torch {results['torch']}; {results['date']}",
             f"Weights: {results['weights']}.",
             f"Iteration: {results['iteration']}.",
             (f"Gatys: all iterations run (--full), after {s['warmup_iterations']} warm-up iterations." if s["full"] else
              f"Gatys: {s['measured_iterations']} iterations timed after {s['warmup_iterations']} warm-up "
              "iteration(s); 'projected' cells = seconds per timed iteration x count."),
             f"Ours: one forward pass of the full-width style net ({results['net']['norm']} norm, "
             f"{results['net']['upsample']} upsampling), median of {s['ff_repeats']} after {s['ff_warmup']} warm-up; "
             "Table 1's 'ours' is eager PyTorch fp32.",
             f"Paper: {results['paper_device']}."]
    p = results["pipeline"]
    if "skipped" in p:
        notes.append(f"Pipeline: skipped ({p['skipped']}).")
    else:
        notes.append(f"Pipeline: {Path(p['clip']).name}, its first frames scaled to each resolution ({p['frames']} at "
                     f"1920x1080, up to {3 * p['frames']} at smaller sizes); "
                     "naive = decode, eager fp32 torch, encode, one frame at a time; both libx264 veryfast crf 18, "
                     "same net and weights.")
    return notes


def print_results(results: dict) -> None:
    console = Console()
    if not console.is_terminal:  # a log or a pipe: wide enough for the paper's layout
        console = Console(width=180)
    for title, header, rows in (("Table 1: Gatys et al. (L-BFGS) vs one feed-forward pass", table1_header(results),
                                 table1_rows(results)),
                                ("Feed-forward pass per backend", BACKEND_HEADER, backend_rows(results)),
                                ("End to end on a clip: rtstyle pipeline vs naive loop", PIPELINE_HEADER,
                                 pipeline_rows(results))):
        if not rows:
            continue
        table = Table(title=title, title_justify="left")
        for h in header:
            table.add_column(h, justify="left" if h in ("size", "", "backend", "precision", "note", "resolution",
                                                          "rtstyle backend") else "right")
        for row in rows:
            table.add_row(*row)
        console.print(table)
        if header is BACKEND_HEADER:
            for line in not_measured(results):
                console.print(f"  not measured: {line}", highlight=False, soft_wrap=True)
    for note in _notes(results):
        console.print(note, highlight=False, soft_wrap=True)


def markdown(results: dict) -> str:
    def md_table(header, rows):
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)

    parts = [f"# rtstyle bench: {results['device']}", "", f"`{results['command']}`", "",
             "## Table 1: Gatys et al. (L-BFGS) vs one feed-forward pass", "",
             md_table(table1_header(results), table1_rows(results)), "",
             "## Feed-forward pass per backend", "", md_table(BACKEND_HEADER, backend_rows(results)), ""]
    parts += [f"- not measured: {line}" for line in not_measured(results)] + [""] * bool(not_measured(results))
    if pipeline_rows(results):
        parts += ["## End to end on a clip: rtstyle pipeline vs naive loop", "",
                  md_table(PIPELINE_HEADER, pipeline_rows(results)), ""]
    parts += [f"- {n}" for n in _notes(results)]
    return "\n".join(parts) + "\n"


def plot(results: dict, path: Path) -> Path:
    """Bar chart of the speedups, measured vs the paper's, per size and iteration count (log scale)."""
    import matplotlib  # here, not at the top: an optional dependency that takes 0.4 s to import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["table1"]
    its = list(rows[0]["gatys"]["iterations"])
    labels, measured, paper = [], [], []
    for r in rows:
        for n in its:
            labels.append(f"{r['size']}px\n{n} it")
            measured.append(r["speedup"][n])
            paper.append(r["paper"]["speedup"].get(n, float("nan")) if r["paper"] else float("nan"))
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(labels) + 2), 4))
    xs = range(len(labels))
    ax.bar([x - 0.2 for x in xs], measured, 0.4, label=f"measured ({results['device'].split(',')[0]})")
    ax.bar([x + 0.2 for x in xs], paper, 0.4, label="paper (GTX Titan X)")
    ax.set_xticks(list(xs), labels, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("speedup over Gatys et al. (x)")
    ax.set_title("Feed-forward vs optimisation (Johnson et al. 2016, Table 1)")
    ax.legend()
    fig.tight_layout()
    with atomic_output(path, overwrite=True) as tmp:  # results are refreshed in place by design
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower().split(",")[0]).strip("-")[:40]


def output_paths(device: torch.device, quick: bool, json_path: Path | None, plot_path: Path | None,
                 out_dir: Path, overwrite: bool = False, inputs: list | None = None) -> tuple[Path, Path | None]:
    """(JSON path, chart path or None without matplotlib), checked before hours of measuring: no
    existing file without ``overwrite`` (the rule of every command), never an input (the clip), a
    folder that can be written."""
    json_path = json_path or out_dir / f"bench-{'quick-' if quick else ''}{_slug(device_name(device))}.json"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        if plot_path is not None:
            raise RtstyleError("--plot needs matplotlib: pip install 'rtstyle[plot]'") from None
    else:
        plot_path = plot_path or json_path.with_suffix(".png")
    for p in (json_path, json_path.with_suffix(".md"), plot_path):
        if p is not None:
            check_output(inputs or [], p, overwrite)
    return json_path, plot_path


def write_results(results: dict, json_path: Path, plot_path: Path | None) -> list[Path]:
    """JSON + Markdown (beside the JSON) and, when ``plot_path`` is given, the PNG chart."""
    written = []
    for path, text in ((json_path, json.dumps(results, indent=2) + "\n"),
                       (json_path.with_suffix(".md"), markdown(results))):
        with atomic_output(path, overwrite=True) as tmp:
            tmp.write_text(text)
        written.append(path)
    if plot_path is not None:
        written.append(plot(results, plot_path))
    return written


def bench(*, sizes: list[int] | None = None, iterations: list[int] | None = None, backends: list[str] | None = None,
          measured_iterations: int | None = None, full: bool = False, quick: bool = False,
          resolutions: list[tuple[int, int]] | None = None, frames: int | None = None, clip: str | None = None,
          device: str | None = None, json_path: str | None = None, plot_path: str | None = None,
          out_dir: str = "benchmarks/results", progress: bool = True, overwrite: bool = False) -> dict:
    """``rtstyle bench``: measure, print the tables, write JSON/Markdown/PNG. Returns the results."""
    dev = resolve_device(device)
    d = defaults(dev, quick)
    s = Settings(sizes=sizes or d["sizes"], iterations=iterations or d["iterations"],
                 opt_in=d["opt_in"] if backends is None else [],
                 measured_iterations=measured_iterations or d["measured_iterations"],
                 warmup_iterations=d["warmup_iterations"], full=full or (d["full"] and measured_iterations is None),
                 ff_warmup=d["ff_warmup"],
                 ff_repeats=d["ff_repeats"],
                 backends=backends or ([b for b in BACKENDS if b != "auto"] if not quick else ["torch"]),
                 resolutions=d["resolutions"] if resolutions is None else resolutions,
                 frames=frames or d["frames"], clip=clip, device=str(dev), quick=quick)
    if any(v < 16 for v in s.sizes):
        raise RtstyleError("--sizes must be at least 16 pixels")
    if any(v % 4 for v in s.sizes):
        raise RtstyleError("--sizes must be multiples of 4 (the style net downsamples by 4)")
    if any(v < 1 for v in s.iterations) or s.measured_iterations < 1 or s.frames < 1:
        raise RtstyleError("--iterations, --measured-iterations and --frames must be positive")
    if any(w % 4 or h % 4 for w, h in s.resolutions):
        raise RtstyleError("pipeline resolutions must be multiples of 4")
    out = Path(out_dir)
    if json_path is None:
        out.mkdir(parents=True, exist_ok=True)
    paths = output_paths(dev, quick, Path(json_path) if json_path else None, Path(plot_path) if plot_path else None,
                         out, overwrite, [clip] if clip else [])
    results = run(s, progress)
    print_results(results)
    for path in write_results(results, *paths):
        print(f"wrote {path}")
    return results
