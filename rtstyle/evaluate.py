"""``rtstyle eval``: the paper's quantitative results, measured on our models.

- ``eval_sr``: PSNR / SSIM of x4 / x8 super-resolution on Set5, Set14, BSD100 (Johnson et al. 2016,
  section 4.2), with the protocol of the SR literature (SRCNN, Dong et al. 2016): HR modcropped to a
  multiple of the scale (top-left), LR = MATLAB ``imresize(hr, 1/scale)`` (bicubic, antialiased),
  outputs rounded to uint8, both metrics on the Y channel of BT.601 YCbCr (MATLAB ``rgb2ycbcr``,
  16-235, not rounded; one-channel files on their gray values), ``scale`` border pixels cropped, SSIM of Wang et al. 2004 (11x11 Gaussian,
  sigma 1.5, K = 0.01 / 0.03, L = 255, "valid" window positions). With this protocol the bicubic
  baseline gives Set5 x4 28.43 dB / 0.8111, the paper's 28.43 / 0.8114.
- ``eval_style``: the paper's Figure 5: the style transfer objective (content + style + TV with the
  training weights) that a feed-forward net reaches in one pass, against Gatys et al.'s L-BFGS
  optimisation (``rtstyle.gatys``) after N iterations, on held-out photos.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from rtstyle import gatys
from rtstyle.backends import resolve_device
from rtstyle.data import make_lr
from rtstyle.errors import RtstyleError, progress as progress_bar
from rtstyle.imageio import list_images, read_image, to_image, to_tensor
from rtstyle.imresize import imresize
from rtstyle.losses import load_style_target
from rtstyle.metrics import modcrop, sr_scores
from rtstyle.models import open_model
from rtstyle.outputs import atomic_output, check_output, same_file
from rtstyle.paper import SR as PAPER_SR, SR_LABELS as PAPER_LABELS
from rtstyle.vgg import STYLE_LAYERS, load_vgg16


def is_one_channel(path: Path) -> bool:
    """Whether an image file stores a single gray channel (not whether an RGB image looks gray)."""
    img = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    return img is not None and img.ndim == 2


# ---------------------------------------------------------------- super-resolution

def _loss_of(meta: dict) -> str | None:
    return meta.get("recipe", {}).get("loss")


def eval_sr(set_dir: str, scale: int = 4, model: str = "bicubic", *, blur: float = 0.0, device: str | None = None,
            backend: str = "torch", json_path: str | None = None, overwrite: bool = False) -> dict:
    """Evaluate bicubic upscaling and, unless ``model`` is ``bicubic``, an SR model on one image set.

    Prints a table beside the paper's numbers and returns (and optionally writes as JSON) the
    per-image and mean scores.
    """
    if scale not in (4, 8):
        raise RtstyleError(f"--scale must be 4 or 8, not {scale}")
    if blur < 0:
        raise RtstyleError(f"--blur must be >= 0, not {blur}")
    folder = Path(set_dir)
    if not folder.is_dir():
        raise RtstyleError(f"image set folder not found: {folder}")
    paths = list_images(folder)
    if not paths:
        raise RtstyleError(f"no images (png/jpg) found in {folder}")
    out = _check_json(json_path, overwrite, [*paths, *([Path(model)] if model != "bicubic" else [])])
    runner, model_name, meta = None, None, None
    if model != "bicubic":
        runner, meta = _sr_runner(model, scale, device, backend)
        model_name = meta["name"]
    methods = ["bicubic"] + ([model_name] if model_name else [])
    per_image: dict[str, dict[str, tuple[float, float]]] = {m: {} for m in methods}
    for path in progress_bar(paths, desc=f"{folder.name} x{scale}", unit="img", dynamic_ncols=True):
        hr = modcrop(read_image(path), scale)
        if min(hr.shape[:2]) < 2 * scale + 11:
            raise RtstyleError(f"{path} is too small for x{scale} evaluation ({hr.shape[1]}x{hr.shape[0]})")
        lr, gray = make_lr(hr, scale, blur), is_one_channel(path)
        per_image["bicubic"][path.name] = sr_scores(imresize(lr, scale), hr, scale, gray)
        if runner:
            per_image[model_name][path.name] = sr_scores(runner(lr), hr, scale, gray)
    result = {
        "set": folder.name, "scale": scale, "images": len(paths), "lr_blur_sigma": blur,
        "protocol": "Y (BT.601, 16-235), border = scale, HR modcrop, LR = MATLAB bicubic imresize, uint8",
        "methods": {m: {"psnr": float(np.mean([p for p, _ in scores.values()])),
                        "ssim": float(np.mean([s for _, s in scores.values()])),
                        "per_image": {k: {"psnr": p, "ssim": s} for k, (p, s) in scores.items()}}
                    for m, scores in per_image.items()},
        "paper": {PAPER_LABELS[k]: {"psnr": v[0], "ssim": v[1]} for k, v in PAPER_SR[scale].get(folder.name, {}).items()},
    }
    if meta is not None:
        result["model"] = {"name": model_name, "loss": _loss_of(meta), "arch": meta["arch"]}
    print(format_sr_table(result))
    if out:
        _write_json(out, result, overwrite)
    return result


def _sr_runner(model: str, scale: int, device: str | None, backend: str):
    """A function uint8 LR RGB -> uint8 SR RGB running the model through ``load_backend``."""
    opened = open_model(model, "sr", backend, device)
    if opened.scale != scale:
        raise RtstyleError(f"model {opened.name} upscales x{opened.scale}, not x{scale}")
    runner = opened.backend

    def run(lr: np.ndarray) -> np.ndarray:
        return to_image(runner(to_tensor(lr).to(runner.device)))

    return run, opened.meta


def format_sr_table(result: dict) -> str:
    """Our PSNR / SSIM beside the paper's, one row per method."""
    paper = PAPER_SR[result["scale"]].get(result["set"], {})
    ours = result["methods"]
    model = result.get("model")
    rows = []
    for key, label in PAPER_LABELS.items():
        if key == "bicubic":
            mine = ours["bicubic"]
        elif model and model["loss"] == key:
            mine = ours[model["name"]]
            label = f"{label} ({model['name']})"
        else:
            mine = None
        if mine is None and key not in paper:
            continue
        rows.append((label, mine, paper.get(key)))
    if model and model["loss"] not in PAPER_LABELS:
        rows.append((model["name"], ours[model["name"]], None))

    def cell(v) -> str:
        if v is None:
            return "-"
        p, s = (v["psnr"], v["ssim"]) if isinstance(v, dict) else v
        return f"{p:.2f} / {s:.4f}"

    blur = f", LR blurred sigma={result['lr_blur_sigma']:g}" if result["lr_blur_sigma"] else ""
    lines = [f"{result['set']} x{result['scale']} ({result['images']} images{blur}): PSNR (dB) / SSIM on Y, "
             f"border {result['scale']} px",
             f"{'method':<28}{'rtstyle':>18}{'paper':>18}"]
    lines += [f"{label:<28}{cell(mine):>18}{cell(theirs):>18}" for label, mine, theirs in rows]
    if not paper:
        lines.append(f"(the paper's numbers for {result['set']} x{result['scale']} are not in rtstyle's table)")
    return "\n".join(lines)


# ---------------------------------------------------------------- style transfer vs Gatys

def _check_json(path: str | None, overwrite: bool, inputs: list[Path]) -> Path | None:
    return check_output(inputs, Path(path), overwrite) if path else None


def _write_json(path: Path, data: dict, overwrite: bool) -> None:
    with atomic_output(path, overwrite) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {path}")


def center_square(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize the shorter side to ``size`` (area / bicubic), then crop the central ``size`` x ``size``."""
    h, w = rgb.shape[:2]
    s = size / min(h, w)
    nw, nh = max(size, round(w * s)), max(size, round(h * s))
    rgb = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    y, x = (nh - size) // 2, (nw - size) // 2
    return np.ascontiguousarray(rgb[y:y + size, x:x + size])


def find_style_image(meta: dict, style_image: str | None) -> Path:
    """The style image a model was trained on: ``--style-image``, else $RTSTYLE_SHARED/data/styles/NAME."""
    if style_image:
        path = Path(style_image)
    else:
        name = meta.get("style_image")
        shared = os.environ.get("RTSTYLE_SHARED")
        if not name or not shared:
            raise RtstyleError(f"cannot tell which style image model {meta['name']} was trained on; "
                               "pass --style-image PATH")
        path = Path(shared) / "data" / "styles" / name
    if not path.is_file():
        raise RtstyleError(f"style image not found: {path}; pass --style-image PATH")
    return path


def crossing(iterations: list[int], curve: list[float], level: float) -> float | None:
    """The first (fractional) iteration at which a decreasing ``curve`` falls to ``level``, or None."""
    for i in range(1, len(curve)):
        if curve[i] <= level:
            lo, hi = curve[i - 1], curve[i]
            frac = 0.0 if lo == hi else (lo - level) / (lo - hi)
            return iterations[i - 1] + frac * (iterations[i] - iterations[i - 1])
    return None


def eval_style(style: str, content_dir: str, *, gatys_iterations: tuple[int, ...] = (50, 100, 300, 500),
               size: int = 256, images: int = 2, init: str = "noise", style_image: str | None = None,
               json_path: str | None = None, plot_path: str | None = None, overwrite: bool = False,
               vgg_weights: str | None = None, device: str | None = None) -> dict:
    """The Gatys objective of a feed-forward net's output vs L-BFGS optimisation (paper Figure 5).

    For each of the first ``images`` photos of ``content_dir`` (centre ``size`` x ``size`` crops):
    the objective of the net's output, and of Gatys et al.'s image after each count in
    ``gatys_iterations`` (one run of max(counts) iterations, measured on the image clamped to [0, 1]).
    The style target, loss layers and weights are the model's training recipe.
    """
    counts = sorted(set(gatys_iterations))
    _check_style_args(counts, size, images, init)
    folder = Path(content_dir)
    if not folder.is_dir():
        raise RtstyleError(f"content folder not found: {folder}")
    dev = resolve_device(device)
    model = open_model(style, "style", backend="torch", device=dev)
    meta = model.meta
    trained_on = Path(os.path.expandvars(meta["data"])).resolve() if meta.get("data") else None
    if trained_on and (folder.resolve() == trained_on or trained_on in folder.resolve().parents):
        raise RtstyleError(f"{folder} holds the photos {meta['name']} was trained on; evaluate on held-out photos")
    paths = list_images(folder)[:images]
    if not paths:
        raise RtstyleError(f"no images (png/jpg) found in {folder}")
    inputs = [*paths, model.path, *([Path(style_image)] if style_image else [])]
    out_json, out_plot = _check_json(json_path, overwrite, inputs), _check_json(plot_path, overwrite, inputs)
    if out_json and out_plot and same_file(out_json, out_plot):
        raise RtstyleError(f"--json and --plot name the same file {out_json}")
    weights = _recipe_weights(meta)
    style_path = find_style_image(meta, style_image)
    vgg = load_vgg16(vgg_weights, STYLE_LAYERS, dev)
    style_t = load_style_target(str(style_path), meta.get("recipe", {}).get("style_size", 512)).to(dev)
    rows = []
    for n, path in enumerate(paths):
        print(f"[{n + 1}/{len(paths)}] {path.name}: L-BFGS for {counts[-1]} iterations at {size}x{size}")
        x = to_tensor(center_square(read_image(path), size)).to(dev)
        rows.append({"image": path.name, **_compare_on(x, model.backend, vgg, style_t, weights, counts, init, seed=n)})
    result = _style_result(rows, counts, meta, style_path, folder, size, init, weights, dev)
    print(format_style_table(result))
    if out_json:
        _write_json(out_json, result, overwrite)
    if out_plot:
        plot_style(result, out_plot, overwrite)
    return result


def _check_style_args(counts: list[int], size: int, images: int, init: str) -> None:
    if not counts or counts[0] < 1:
        raise RtstyleError("--gatys-iterations must be positive counts, e.g. 50,100,300,500")
    if size < 16 or size % 4:
        raise RtstyleError(f"--size must be a multiple of 4 and at least 16, not {size}")
    if images < 1:
        raise RtstyleError(f"--images must be at least 1, not {images}")
    if init not in ("noise", "content"):
        raise RtstyleError(f"--init must be noise or content, not {init!r}")


def _recipe_weights(meta: dict) -> dict:
    """The model's training weights (the defaults where its card has none); its loss layers must be gatys'."""
    recipe = meta.get("recipe", {})
    weights = gatys.default_weights()
    weights.update({k: recipe[f"{k}_weight"] for k in weights if f"{k}_weight" in recipe})
    if recipe.get("balanced"):  # the per-layer normalisers of this style, from the card
        norms = meta.get("style_norms", {})
        if len(norms) != 1:
            raise RtstyleError(f"{meta['name']} was trained with the balanced style loss but its card has no "
                               "normalisers for one style")
        weights["style_norms"] = next(iter(norms.values()))
    if recipe.get("content_layer", gatys.CONTENT_LAYER) != gatys.CONTENT_LAYER or \
            tuple(recipe.get("style_layers", STYLE_LAYERS)) != tuple(STYLE_LAYERS):
        raise RtstyleError(f"{meta['name']} was trained with other loss layers than rtstyle.gatys uses")
    return weights


def _compare_on(x: torch.Tensor, runner, vgg, style_t: torch.Tensor, weights: dict, counts: list[int], init: str,
                seed: int) -> dict:
    """One photo: the objective of the net's output, and of L-BFGS's image after each of ``counts``."""
    content_feats, style_grams = gatys.targets(vgg, x, style_t)

    def objective(y: torch.Tensor) -> dict[str, float]:
        with torch.no_grad():
            return {k: float(v) for k, v in gatys.gatys_objective(vgg, y, content_feats, style_grams, weights).items()}

    started = time.perf_counter()
    y_ff = runner(x).float().clamp(0, 1)
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    ff_seconds = time.perf_counter() - started
    ff = objective(y_ff)
    curve: list[float] = []
    at: dict[int, dict[str, float]] = {}

    def record(i: int, terms: dict[str, float], y: torch.Tensor) -> None:
        curve.append(terms["total"])  # objective of the image after i - 1 updates
        if i in counts:
            at[i] = objective(y.clamp(0, 1))

    started = time.perf_counter()
    gatys.optimise(x, style_t, counts[-1], vgg=vgg, weights=weights, init=init, seed=seed, callback=record)
    gatys_seconds = time.perf_counter() - started
    return {"feed_forward": ff, "photo": objective(x), "gatys": {str(k): at[k] for k in counts}, "curve": curve,
            "feed_forward_seconds": ff_seconds, "gatys_seconds_per_iteration": gatys_seconds / counts[-1]}


def _style_result(rows: list[dict], counts: list[int], meta: dict, style_path: Path, folder: Path, size: int,
                  init: str, weights: dict, dev: torch.device) -> dict:
    mean_ff = float(np.mean([r["feed_forward"]["total"] for r in rows]))
    mean_photo = float(np.mean([r["photo"]["total"] for r in rows]))
    mean_at = {k: float(np.mean([r["gatys"][str(k)]["total"] for r in rows])) for k in counts}
    mean_curve = np.mean([r["curve"] for r in rows], axis=0).tolist()
    return {
        "style": meta["name"], "style_image": style_path.name, "content": str(folder), "images": len(rows),
        "size": size, "init": init, "weights": weights, "device": str(dev),
        "feed_forward_total": mean_ff, "photo_total": mean_photo, "gatys_total": {str(k): v for k, v in mean_at.items()},
        "gatys_iterations_to_match": crossing(list(range(len(mean_curve))), mean_curve, mean_ff), "per_image": rows,
    }


def format_style_table(result: dict) -> str:
    counts = list(result["gatys_total"])
    head = f"{'image':<16}{'photo':>10}{'net':>10}" + "".join(f"{'L-BFGS ' + c:>13}" for c in counts)
    lines = [f"style {result['style']}: Gatys objective (content + style + TV, training weights), "
             f"{result['images']} images of {Path(result['content']).name} at {result['size']}x{result['size']}, "
             f"L-BFGS from {result['init']}; lower is better", head]
    for r in result["per_image"]:
        lines.append(f"{r['image']:<16}{r['photo']['total']:>10.3f}{r['feed_forward']['total']:>10.3f}"
                     + "".join(f"{r['gatys'][c]['total']:>13.3f}" for c in counts))
    lines.append(f"{'mean':<16}{result['photo_total']:>10.3f}{result['feed_forward_total']:>10.3f}"
                 + "".join(f"{result['gatys_total'][c]:>13.3f}" for c in counts))
    lines.append(f"the net's output scores {result['feed_forward_total'] / result['photo_total']:.2f}x the unchanged "
                 "photo's objective (under 1: the net moved the photo towards the painting)")
    matched = result["gatys_iterations_to_match"]
    lines.append(f"L-BFGS reaches the net's mean objective after {matched:.0f} iterations" if matched is not None
                 else f"L-BFGS does not reach the net's mean objective within {len(result['per_image'][0]['curve'])} iterations")
    ff_s = np.mean([r["feed_forward_seconds"] for r in result["per_image"]])
    it_s = np.mean([r["gatys_seconds_per_iteration"] for r in result["per_image"]])
    lines.append(f"time on {result['device']}: net {ff_s * 1000:.0f} ms per image, L-BFGS {it_s * 1000:.0f} ms per iteration")
    return "\n".join(lines)


def plot_style(result: dict, path: Path, overwrite: bool = False) -> None:
    """Objective vs L-BFGS iterations (mean over images), the net's objective as a horizontal line."""
    import matplotlib  # here, not at the top: an optional dependency that takes 0.4 s to import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = np.mean([r["curve"] for r in result["per_image"]], axis=0)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.plot(np.arange(len(curve)), curve, label="Gatys et al. (L-BFGS)")
    counts = [int(c) for c in result["gatys_total"]]
    ax.plot(counts, [result["gatys_total"][str(c)] for c in counts], "o", color="C0")
    ax.axhline(result["feed_forward_total"], color="C3", linestyle="--", label=f"feed-forward net ({result['style']})")
    ax.set_yscale("log")
    ax.set_xlabel("L-BFGS iterations")
    ax.set_ylabel("objective (content + style + TV)")
    ax.set_title(f"{result['style']}: {result['images']} images, {result['size']}x{result['size']}")
    ax.legend()
    fig.tight_layout()
    with atomic_output(path, overwrite) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    print(f"wrote {path}")
