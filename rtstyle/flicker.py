"""``rtstyle eval flicker``: how much stylized video flickers, per clip and style, with and without
``rtstyle.stabilize``.

The measure is the warping error of the video-stylization literature (Lai et al. 2018, Wang et al.
2020), in 8-bit units: the mean over consecutive frames of ``|O(t+1) - warp(O(t))|``, averaged over
channels and over the pixels where the flow is trusted. The flow is OpenCV's **Farneback** computed
on the *input* frames at the evaluation resolution (the stabiliser's default flow too: the DIS
variant shows the score with another flow), with the forward-backward consistency mask
(``stabilize.consistency``). For the synthetic pan the motion is known exactly (an integer shift), so
its flow and mask are exact. The input's own error is the floor: what a perfectly stable
stylization of this input would still score from noise, lighting and flow errors.

That stabilising did not wash the style out is checked with the style loss (Gram matrices of
VGG-16, ``rtstyle.losses``) of the stabilised frames against the per-frame ones, and the mean
absolute difference between them.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from rtstyle.backends import resolve_device
from rtstyle.errors import RtstyleError
from rtstyle.evaluate import find_style_image
from rtstyle.frames import Options, process_tensor, upload
from rtstyle.imageio import read_image
from rtstyle.losses import gram, load_style_target, style_loss
from rtstyle.models import open_model
from rtstyle.outputs import atomic_output, check_output
from rtstyle.stabilize import FARNEBACK, FLAT, Flow, Settings, Stabilizer, consistency, warp
from rtstyle.vgg import STYLE_LAYERS, load_vgg16

METRIC_FLOW = ("OpenCV Farneback (pyramid {}, {} levels, window {}, {} iterations) on the input frames, "
               "forward-backward consistency mask").format(*FARNEBACK[:4])
# The stabiliser variants measured beside the default: why a plain blend is not enough.
VARIANTS = {
    "stabilized": Settings(),
    "blend 0.5 of previous frame": Settings(alpha=0.5, recursive=False, confidence=False, interp="bilinear", restore=0),
    "alpha 0.9": Settings(alpha=0.9),
    "alpha 0.95, ramp 16-48, 7x7 restore": Settings(alpha=0.95, photo_ramp=(16, 48), restore=7),
    "DIS flow": Settings(method="dis"),
    "no photometric trust": Settings(confidence=False),
    "frame-to-frame photometric test": Settings(drift=False),
    "bilinear, no contrast restore": Settings(interp="bilinear", restore=0),
}
PAN_STEP = 2  # pixels per frame of the synthetic pan


# ---------------------------------------------------------------- inputs

def read_clip(path: Path, frames: int, side: int, skip: int = 0) -> list[np.ndarray]:
    """The first ``frames`` frames after ``skip`` as uint8 RGB, the longer side at most ``side`` (even sizes)."""
    out = []
    try:
        with av.open(str(path)) as c:
            for i, frame in enumerate(c.decode(c.streams.video[0])):
                if i >= skip:
                    out.append(_shrink(frame.to_ndarray(format="rgb24"), side))
                if len(out) == frames:
                    break
    except (av.error.FFmpegError, IndexError) as e:
        raise RtstyleError(f"cannot read video {path}: {e}") from None
    if len(out) < 2:
        raise RtstyleError(f"{path} has fewer than 2 frames to compare")
    return out


def _shrink(rgb: np.ndarray, side: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    f = min(1.0, side / max(h, w))
    size = (max(2, round(w * f / 2) * 2), max(2, round(h * f / 2) * 2))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA) if size != (w, h) else rgb


def synthetic_pan(photo: np.ndarray, frames: int, side: int, step: int = PAN_STEP) -> list[np.ndarray]:
    """A camera panning right over a still photo by exactly ``step`` pixels a frame (16:9 window,
    ``side`` wide): frame t+1's pixel (x, y) is frame t's (x + step, y)."""
    w, h = side, side * 9 // 16 // 2 * 2
    scale = max(h / photo.shape[0], (w + step * frames) / photo.shape[1])
    big = cv2.resize(photo, (round(photo.shape[1] * scale) + 1, round(photo.shape[0] * scale) + 1),
                     interpolation=cv2.INTER_AREA)
    return [np.ascontiguousarray(big[:h, t * step:t * step + w]) for t in range(frames)]


def pan_flows(frames: list[np.ndarray], step: int = PAN_STEP) -> list[tuple[np.ndarray, np.ndarray]]:
    """The exact (flow, mask) of ``synthetic_pan``: every pixel came from ``step`` to its right."""
    h, w = frames[0].shape[:2]
    flow = np.zeros((h, w, 2), np.float32)
    flow[..., 0] = step
    mask = np.ones((h, w), bool)
    mask[:, w - step:] = False
    return [(flow, mask)] * (len(frames) - 1)


# ---------------------------------------------------------------- the metric

def metric_flows(frames: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each t: (flow from frame t+1 back to frame t, trusted pixels), Farneback on the input.

    No pixel is trusted after a flat frame (black, as a clip starts or fades from black): its flow
    follows nothing, and the cut from black to the first picture would otherwise count as flicker."""
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    flow = Flow("farneback")
    out = []
    for a, b in zip(gray, gray[1:]):
        back = flow(b, a)
        trusted = consistency(back, flow(a, b)) if a.std() >= FLAT else np.zeros(a.shape, bool)
        out.append((back, trusted))
    return out


def warping_error(frames: list[np.ndarray], flows: list[tuple[np.ndarray, np.ndarray]]) -> list[float]:
    """Per pair of frames: mean |O(t+1) - warp(O(t))| over the trusted pixels and the channels, 8-bit units.

    >>> a = np.zeros((4, 4, 3), np.uint8); b = a + 10
    >>> warping_error([a, b], [(np.zeros((4, 4, 2), np.float32), np.ones((4, 4), bool))])
    [10.0]
    """
    errs = []
    for (flow, mask), o0, o1 in zip(flows, frames, frames[1:]):
        diff = np.abs(o1.astype(np.float32) - warp(o0.astype(np.float32), flow))
        errs.append(float(diff[mask].mean()) if mask.any() else float("nan"))
    return errs


# ---------------------------------------------------------------- stylizing and stabilising

@torch.inference_mode()
def stylize(model, frames: list[np.ndarray], batch: int = 4) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(net inputs, per-frame net outputs) as 1x3xHxW tensors: what the video pipeline's
    stabiliser hook sees (the net at the frames' own resolution)."""
    xs, ys = [], []
    for i in range(0, len(frames), batch):
        x = upload(np.stack(frames[i:i + batch]), model.backend.device)
        y = process_tensor(model, x, Options())
        xs += list(x.split(1))
        ys += list(y.split(1))
    return xs, ys


@torch.inference_mode()
def stabilise(xs: list[torch.Tensor], ys: list[torch.Tensor], settings: Settings) -> list[torch.Tensor]:
    """The per-frame outputs through a fresh ``Stabilizer``, in order (as ``--stabilize`` does)."""
    stab = Stabilizer(settings)
    return [stab(x, y) for x, y in zip(xs, ys)]


def to_uint8(ys: list[torch.Tensor]) -> list[np.ndarray]:
    return [y[0].mul(255).add(0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy() for y in ys]


class StyleMeter:
    """The Gram style loss of frames against one style image (every ``every``-th frame)."""

    def __init__(self, vgg, style_path: Path, style_size: int, every: int):
        self.vgg, self.every = vgg, every
        device = next(vgg.parameters()).device
        with torch.inference_mode():
            self.grams = [gram(f) for f in vgg(load_style_target(str(style_path), style_size).to(device)).values()]

    @torch.inference_mode()
    def __call__(self, ys: list[torch.Tensor]) -> float:
        picked = ys[::self.every]
        return float(np.mean([style_loss([gram(f) for f in self.vgg(y.float()).values()], self.grams).item()
                              for y in picked]))


# ---------------------------------------------------------------- the evaluation

def score(outputs: list[np.ndarray], flows, base: float | None = None) -> dict:
    """Warping error of one output sequence (and its ratio to ``base``, the per-frame output's)."""
    err = float(np.nanmean(warping_error(outputs, flows)))
    return {"warping_error": round(err, 3), **({"ratio": round(err / base, 3)} if base else {})}


def evaluate_style(model, frames: list[np.ndarray], flows, meter: StyleMeter | None,
                   variants: dict[str, Settings]) -> dict:
    """Per-frame output and every stabiliser variant on one clip: error, ratio, style loss change."""
    xs, ys = stylize(model, frames)
    per_frame = to_uint8(ys)
    row = {"per-frame": score(per_frame, flows)}
    style_ref = meter(ys) if meter else None
    if style_ref is not None:
        row["per-frame"]["style_loss"] = round(style_ref, 5)
    for name, settings in variants.items():
        stab = stabilise(xs, ys, settings)
        out = to_uint8(stab)
        r = score(out, flows, row["per-frame"]["warping_error"])
        r["diff_to_per_frame"] = round(float(np.mean([np.abs(a.astype(np.float32) - b).mean()
                                                      for a, b in zip(out, per_frame)])), 3)
        if meter:
            loss = meter(stab)
            r.update(style_loss=round(loss, 5), style_change=round(loss / style_ref - 1, 4))
        row[name] = r
    return row


def default_clips() -> list[Path]:
    """The shared real clips (``$RTSTYLE_SHARED/data/video``)."""
    shared = os.environ.get("RTSTYLE_SHARED")
    folder = Path(shared) / "data" / "video" if shared else None
    if folder is None or not folder.is_dir():
        raise RtstyleError("no clips given and $RTSTYLE_SHARED/data/video not found; pass --clips")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".mp4", ".avi", ".webm", ".mkv", ".mov"))


def load_inputs(clips: list[Path], pan_photo: Path | None, frames: int, side: int) -> dict:
    """{name: (frames, metric flows)} for every clip and the synthetic pan."""
    out = {}
    for clip in clips:
        f = read_clip(clip, frames, side)
        out[clip.name] = (f, metric_flows(f))
    if pan_photo is not None:
        f = synthetic_pan(read_image(pan_photo), frames, side)
        out[f"pan {PAN_STEP}px/frame"] = (f, pan_flows(f))
    return out


def eval_flicker(styles: list[str], clips: list[Path] | None = None, pan_photo: Path | None = None, *,
                 frames: int = 30, side: int = 320, variants: dict[str, Settings] | None = None,
                 style_every: int = 6, json_path: str | None = None, plot_path: str | None = None,
                 overwrite: bool = False, backend: str = "auto", vgg_weights: str | None = None,
                 device: str | None = None) -> dict:
    """Warping error per clip and style, per-frame vs stabilised; see the module docstring."""
    if frames < 3 or side < 32:
        raise RtstyleError("--frames must be at least 3 and --side at least 32")
    sources = [*(clips or []), *([pan_photo] if pan_photo else [])]
    out_json = check_output(sources, Path(json_path), overwrite) if json_path else None
    out_plot = check_output(sources, Path(plot_path), overwrite) if plot_path else None
    variants = VARIANTS if variants is None else variants
    inputs = load_inputs(default_clips() if clips is None else clips, pan_photo, frames, side)
    dev = resolve_device(device)
    vgg = load_vgg16(vgg_weights, STYLE_LAYERS, dev) if style_every else None
    result = {"metric": METRIC_FLOW, "pan": f"exact {PAN_STEP} px/frame shift (known flow)", "frames": frames,
              "side": side, "variants": {k: asdict(v) for k, v in variants.items()}, "clips": {}}
    for name, (f, flows) in inputs.items():
        result["clips"][name] = {"size": f"{f[0].shape[1]}x{f[0].shape[0]}", "frames": len(f),
                                 "trusted": round(float(np.mean([m.mean() for _, m in flows])), 3),
                                 "input": score(f, flows), "styles": {}}
    for style in styles:
        model = open_model(style, "style", backend=backend, device=dev)
        meter = StyleMeter(vgg, find_style_image(model.meta, None), model.meta.get("recipe", {}).get(
            "style_size", 512) or 512, style_every) if vgg is not None else None
        for name, (f, flows) in inputs.items():
            print(f"rtstyle: flicker: {model.name} on {name}", flush=True)
            result["clips"][name]["styles"][model.name] = evaluate_style(model, f, flows, meter, variants)
    print(format_table(result))
    if out_json:
        with atomic_output(out_json, overwrite) as tmp:
            tmp.write_text(json.dumps(result, indent=2) + "\n")
    if out_plot:
        plot(result, out_plot, overwrite)
    return result


def _mean(rows: list[dict], key: str) -> float:
    vals = [r[key] for r in rows if key in r]
    return float(np.mean(vals)) if vals else float("nan")


def summary(result: dict) -> dict:
    """{clip: {variant: mean over styles of each number}}: what the tables and the plot show."""
    out = {}
    for clip, c in result["clips"].items():
        names = next(iter(c["styles"].values())).keys() if c["styles"] else []
        out[clip] = {"input": c["input"]["warping_error"]}
        for v in names:
            rows = [s[v] for s in c["styles"].values()]
            out[clip][v] = {k: _mean(rows, k) for k in ("warping_error", "ratio", "style_change", "diff_to_per_frame")}
    return out


def format_table(result: dict) -> str:
    """Markdown: per clip, the input's error, per-frame, stabilised (mean over styles), then every variant's ratio."""
    s = summary(result)
    variants = list(result["variants"])
    head = ["clip", "input", "per-frame", "stabilized", "ratio", "style loss change"] + variants[1:]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for clip, row in s.items():
        st = row.get("stabilized", {})
        cells = [clip, f"{row['input']:.2f}", f"{row.get('per-frame', {}).get('warping_error', float('nan')):.2f}",
                 f"{st.get('warping_error', float('nan')):.2f}", f"{st.get('ratio', float('nan')):.2f}x",
                 f"{100 * st.get('style_change', float('nan')):+.1f}%"]
        cells += [f"{row[v]['ratio']:.2f}x ({100 * row[v]['style_change']:+.0f}%)" if v in row else "" for v in variants[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(result: dict, path: Path, overwrite: bool = False) -> None:
    """Bars per clip: the input's warping error, per-frame and stabilised outputs (mean over styles)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = summary(result)
    clips = list(s)
    series = [("input", [s[c]["input"] for c in clips])]
    for v in ("per-frame", "blend 0.5 of previous frame", "stabilized"):
        if all(v in s[c] for c in clips):
            series.append((v, [s[c][v]["warping_error"] for c in clips]))
    fig, ax = plt.subplots(figsize=(1.6 * len(clips) + 3, 3.6))
    width = 0.8 / len(series)
    for i, (label, vals) in enumerate(series):
        ax.bar(np.arange(len(clips)) + (i - (len(series) - 1) / 2) * width, vals, width, label=label)
    ax.set_xticks(np.arange(len(clips)), clips, rotation=15, fontsize=8)
    ax.set_ylabel("warping error (8-bit units)")
    styles = sorted({st for c in result["clips"].values() for st in c["styles"]})
    ax.set_title(f"Flicker, mean over {len(styles)} style(s), {result['frames']} frames at {result['side']} px", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_output(path, overwrite) as tmp:
        fig.savefig(tmp, dpi=110, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
