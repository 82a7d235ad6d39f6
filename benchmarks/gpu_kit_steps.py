"""The GPU kit's steps (run by ``benchmarks/gpu_kit.py``, one process each; see its docstring).

Every step writes its result file after each measurement, so one stopped at its time limit keeps
what it had measured; each checks the clock before starting a measurement it could not finish.
The retrain needs no PyAV (a resuming call carries models instead of the wheel), so the modules
that import it (``rtstyle.bench``, ``rtstyle.stream``, ``pipeline_fps``) are imported by the steps
that use them.
"""
from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rtstyle import checkpoint, models, train
from rtstyle.backends import load_backend
from rtstyle.errors import RtstyleError
from rtstyle.frames import Options, process
from rtstyle.imageio import list_images, read_image
from rtstyle.metrics import psnr
from rtstyle.nets import build_net

ROOT = Path(__file__).resolve().parent.parent
STYLES = ("candy", "muse", "starry_night", "wave", "composition_vii", "the_scream", "mosaic", "udnie",
          "rain_princess", "feathers")
SR_MODELS = ((4, "feat"), (4, "pixel"), (8, "feat"))
FP16_COMBOS = (("torch", "fp16"), ("compile", "fp16"), ("tensorrt", "fp16"))
PSNR_MIN = 40.0  # dB, FP16 against FP32 (issue 15)
VGG_FILE = "vgg16_relu4_3_fp16.pth"


@dataclass
class Context:
    """What every step knows: where things are, how big to go, and when to stop."""

    carry: Path
    out: Path
    work: Path
    data: Path
    vgg: str | None
    smoke: bool
    deadline: float
    device: torch.device
    recipe: str
    resume: str | None

    @classmethod
    def make(cls, args) -> Context:
        carry, work = Path(args.carry), Path(args.work)
        data = unpack_data(carry, work)
        vgg = carry / VGG_FILE
        return cls(carry, Path(args.out), work, data, str(vgg) if vgg.is_file() else os.environ.get("RTSTYLE_VGG16"),
                   args.smoke, time.time() + args.limit - (3 if args.smoke else 8),
                   torch.device("cuda" if torch.cuda.is_available() else "cpu"), args.recipe, args.resume)

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def left(self) -> float:
        return self.deadline - time.time()


def unpack_data(carry: Path, work: Path) -> Path:
    """The carried photos, styles, clip: ``data.tar`` unpacked once into the scratch folder."""
    data = work / "data"
    if not data.is_dir():
        tmp = work / "data.partial"
        with tarfile.open(carry / "data.tar") as tar:
            tar.extractall(tmp, filter="data")
        tmp.rename(data)
    return data


class Results:
    """A JSON result file rewritten (atomically) after every change."""

    def __init__(self, path: Path, keep: bool = False, **head):
        """``keep``: add to what the file holds (two steps share ``train.json``)."""
        self.path = path
        self.data = {**(json.loads(path.read_text()) if keep and path.is_file() else {}), **head}
        self.save()

    def add(self, key: str, row: dict) -> None:
        self.data.setdefault(key, []).append(row)
        self.save()

    def set(self, key: str, value) -> None:
        self.data[key] = value
        self.save()

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=str) + "\n")
        tmp.replace(self.path)


def reason(e: BaseException) -> str:
    return f"{e.__class__.__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


# ---------------------------------------------------------------- 1. the CUDA tests

def step_tests(ctx: Context) -> None:
    """``pytest -m cuda``: on a machine without CUDA every one of them skips, with its reason."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-m", "cuda", "-p", "no:cacheprovider", str(ROOT / "tests")]
    shared = ctx.work / "shared" / "data"  # the tests' $RTSTYLE_SHARED: the carried content images
    shared.mkdir(parents=True, exist_ok=True)
    if not (shared / "content").exists():
        (shared / "content").symlink_to(ctx.data / "content")
    env = {**os.environ, "RTSTYLE_SHARED": str(shared.parent)}
    with open(ctx.out / "cuda_tests.log", "w") as log:
        log.write(f"$ RTSTYLE_SHARED={shared.parent} {' '.join(cmd)}\n")
        log.flush()
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
                            timeout=max(5.0, ctx.left())).returncode
    sys.exit(rc)


# ---------------------------------------------------------------- 2. backends on CUDA

def backend_or_reason(net, meta: dict, name: str, precision: str, ctx: Context):
    """(backend, None) or (None, why not): fp16 needs CUDA; compile is not run on a CPU in smoke mode."""
    if ctx.smoke and name == "compile" and not ctx.cuda:
        return None, "not run in smoke mode on a CPU (it compiles each shape for 20-30 s there)"
    try:
        return load_backend(net, meta, name, ctx.device, precision), None
    except (RtstyleError, ImportError, RuntimeError) as e:
        return None, reason(e)


def quality_photos(ctx: Context) -> np.ndarray:
    photos = [read_image(p) for p in list_images(ctx.data / "photos")]
    return np.stack(photos[:2] if ctx.smoke else photos)


def fp16_quality(name: str, path: Path, photos: np.ndarray, combos, ctx: Context) -> list[dict]:
    """Each FP16 backend against eager FP32 on the same photos: PSNR, NaN, black frames."""
    model32 = models.open_model(str(path), None, "torch", str(ctx.device), "fp32")
    ref = process(model32, photos)
    rows = []
    for backend, precision in combos:
        model, why = backend_or_reason(copy.deepcopy(model32.net), model32.meta, backend, precision, ctx)
        if model is None:
            rows.append({"model": name, "backend": backend, "precision": precision, "skipped": why})
            continue
        wrapped = models.Model.wrap(model, model32.meta, model32.net, path)
        with torch.inference_mode():
            raw = wrapped.backend(torch.from_numpy(photos).permute(0, 3, 1, 2).float().div(255).to(ctx.device))
        y = process(wrapped, photos)
        rows.append({"model": name, "backend": backend, "precision": precision,
                     "psnr_db": [round(psnr(a, b), 2) for a, b in zip(y, ref)],
                     "nan": bool(torch.isnan(raw.float()).any()),
                     "black_frames": int(sum(float(f.max()) < 8 for f in y)),
                     "ok": all(psnr(a, b) >= PSNR_MIN for a, b in zip(y, ref))})
    return rows


def fps_shapes(ctx: Context) -> list[tuple[int, int]]:
    if ctx.smoke:
        return [(32, 32), (48, 64)]
    return [(256, 256), (512, 512), (1024, 1024), (720, 1280), (1080, 1920)]


def step_backends(ctx: Context) -> None:
    from pipeline_fps import net_fps
    from rtstyle import bench
    res = Results(ctx.out / "backends.json", device=str(ctx.device), psnr_min_db=PSNR_MIN,
                  photos=[p.name for p in list_images(ctx.data / "photos")], weights_fps=bench.RANDOM_WEIGHTS)
    photos = quality_photos(ctx)
    shipped = [(n, p) for n, p, _ in models.list_models()][: 2 if ctx.smoke else None]
    for i, (name, path) in enumerate(shipped):
        # every FP16 route for two models (compiling costs seconds a model), eager FP16 for all
        combos = FP16_COMBOS if name in ("muse", "sr_x4_feat") or (ctx.smoke and i == 0) else FP16_COMBOS[:1]
        for row in fp16_quality(name, path, photos, combos, ctx):
            res.add("fp16_quality", row)
    net, meta = bench.random_net()
    seconds = 0.2 if ctx.smoke else 1.0
    for backend, precision in (("torch", "fp32"),) + FP16_COMBOS:
        fn, why = backend_or_reason(copy.deepcopy(net), meta, backend, precision, ctx)
        for h, w in fps_shapes(ctx):
            for batch in (1, 2) if ctx.smoke else (1, 4):
                row = {"backend": backend, "precision": precision, "height": h, "width": w, "batch": batch}
                if fn is None or ctx.left() < 15 * (not ctx.smoke):
                    res.add("fps", {**row, "skipped": why or "time limit"})
                    continue
                try:
                    res.add("fps", {**row, "fps": round(net_fps(fn, h, w, batch, seconds), 2)})
                except (RuntimeError, RtstyleError) as e:
                    res.add("fps", {**row, "error": reason(e)})


# ---------------------------------------------------------------- 3. Table 1

def step_table1(ctx: Context) -> None:
    """``rtstyle.bench`` size by size (a size finished is a size kept), every Gatys iteration run."""
    from rtstyle import bench
    d = bench.defaults(ctx.device)
    sizes, iterations = ([32], [2, 4]) if ctx.smoke else (d["sizes"], d["iterations"])
    res = Results(ctx.out / "table1.json", sizes=sizes, iterations=iterations)
    for size in sizes:
        s = bench.Settings(sizes=[size], iterations=iterations, measured_iterations=2 if ctx.smoke else 20,
                           warmup_iterations=1 if ctx.smoke else 3, full=True, ff_warmup=1 if ctx.smoke else 10,
                           ff_repeats=3 if ctx.smoke else 50, backends=["torch"], opt_in=[], resolutions=[],
                           frames=1, clip=None, device=str(ctx.device))
        results = bench.run(s, progress=False)
        results["markdown"] = bench.markdown(results)
        res.add("runs", results)


# ---------------------------------------------------------------- 4. the video pipeline

def step_pipeline(ctx: Context) -> None:
    """End-to-end fps of ``run_video`` (decode, planes or RGB uploaded, net, encode) against the net alone."""
    from pipeline_fps import net_fps
    from rtstyle import bench
    from rtstyle.stream import run_video
    sizes, frames = ([(128, 72)], 4) if ctx.smoke else ([(1280, 720), (1920, 1080)], 120)
    precision = "fp16" if ctx.cuda else "fp32"
    model = models.open_model("muse", "style", "auto", str(ctx.device), precision)
    res = Results(ctx.out / "pipeline.json", model="muse (shipped, width 0.5)", backend=model.backend.name,
                  precision=precision, clip="chaplin.mp4 scaled", frames=frames)
    for w, h in sizes:
        src = ctx.work / f"clip-{h}p.mp4"
        bench.scaled_clip(ctx.data / "video" / "chaplin.mp4", src, w, h, frames)
        alone = net_fps(model.backend, h, w, 1, 0.3 if ctx.smoke else 2.0)
        for device_yuv in (True, False):
            for batch in (1, 4):
                row = {"width": w, "height": h, "batch": batch, "yuv_on_device": device_yuv, "net_alone_fps": round(alone, 2)}
                if ctx.left() < 10 * (not ctx.smoke):
                    res.add("rows", {**row, "skipped": "time limit"})
                    continue
                r = run_video(src, ctx.work / f"out-{h}p.mp4", model, Options(), batch=batch, overwrite=True,
                              progress=False, device_yuv=device_yuv)
                res.add("rows", {**row, "frames": r.frames, "end_to_end_fps": round(r.fps, 2),
                                 "net_in_pipeline_fps": round(r.net_fps, 2), "efficiency": round(r.fps / alone, 3)})


# ---------------------------------------------------------------- 5. training throughput

def train_steps_per_second(ctx: Context, compiled: bool, width: float, size: int, batch: int, steps: int) -> dict:
    """Adam steps of the real style loss (VGG-16 from the carry), bf16 autocast, channels_last on CUDA."""
    torch.manual_seed(0)
    vgg = train.load_vgg16(ctx.vgg, device=ctx.device)
    net = build_net({"kind": "style", "width": width}).to(ctx.device)
    if ctx.cuda:
        vgg.to(memory_format=torch.channels_last)
        net.to(memory_format=torch.channels_last)
    with torch.no_grad():
        grams = [train.losses.gram(f) for f in vgg(torch.rand(1, 3, 2 * size, 2 * size, device=ctx.device)).values()]
    loss_fn = train.style_objective(vgg, grams, 1.0, 1.0, 1.0)
    loss_fn = torch.compile(loss_fn) if compiled else loss_fn
    opt, amp = torch.optim.Adam(net.parameters(), 1e-3), train.autocast_dtype(ctx.device)
    x = torch.rand(batch, 3, size, size, device=ctx.device).contiguous(memory_format=torch.channels_last)
    times = []
    for _ in range(steps + 2):  # two warm-up steps (the compile happens in the first)
        t0 = time.perf_counter()
        with torch.autocast(ctx.device.type, dtype=amp or torch.float32, enabled=amp is not None):
            total = loss_fn(net, x)["total"]
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        sync(ctx.device)
        times.append(time.perf_counter() - t0)
    return {"compiled": compiled, "width": width, "size": size, "batch": batch, "autocast": str(amp),
            "first_step_s": round(times[0], 2), "steps_per_s": round(len(times[2:]) / sum(times[2:]), 2)}


def step_train(ctx: Context) -> None:
    size, batch, steps = (32, 1, 1) if ctx.smoke else (256, 4, 30)
    res = Results(ctx.out / "train.json", device=str(ctx.device), channels_last=ctx.cuda)
    for compiled in (False, True):
        for width in (0.5,) if ctx.smoke else (1.0, 0.5):
            row = {"compiled": compiled, "width": width, "size": size, "batch": batch}
            if compiled and ctx.smoke and not ctx.cuda:
                res.add("rows", {**row, "skipped": "not run in smoke mode on a CPU (minutes of compiling there)"})
            elif ctx.left() < 20 * (not ctx.smoke):
                res.add("rows", {**row, "skipped": "time limit"})
            else:
                try:
                    res.add("rows", train_steps_per_second(ctx, compiled, width, size, batch, steps))
                except Exception as e:  # a compile failure is a result too
                    res.add("rows", {**row, "error": reason(e)})


# ---------------------------------------------------------------- 6. the retrain

def jobs(ctx: Context, multi: bool) -> list[dict]:
    """The shipped models' training calls (``rtstyle.train``) at GPU scale: 256 px crops, batch 4, the
    paper's lr; the shipped recipe's final form (one 10-style net, width 0.25, 5x5 edge convs, style
    images at the crop size, style loss balanced by each painting's total photo distance at weight 6,
    temporal weight 500; SR with the bicubic skip)."""
    data, styles = str(ctx.data / "train"), ctx.data / "styles"
    names = STYLES[:1] if ctx.smoke else STYLES
    size = 32 if ctx.smoke else 256
    common = dict(data=data, batch_size=1 if ctx.smoke else 4, lr=1e-3, workers=0 if ctx.smoke else 2,
                  vgg_weights=ctx.vgg, checkpoint_every=0)
    style = dict(common, image_size=size, style_size=size, width=0.25, edge_kernel=5, balanced="total",
                 style_weight=6.0, temporal_weight=500.0)
    if multi:
        out = [dict(style, fn="train_style", name="zoo", style_image=[str(styles / f"{n}.jpg") for n in names])]
    else:
        out = [dict(style, fn="train_style", name=n, style_image=str(styles / f"{n}.jpg")) for n in names]
    for scale, loss in SR_MODELS[:1] if ctx.smoke else SR_MODELS:
        out.append(dict(common, fn="train_sr", name=f"sr_x{scale}_{loss}", scale=scale, loss=loss, residual=True,
                        patch_size=32 if ctx.smoke else 288))
    return out


def multi_style(ctx: Context) -> bool:
    """One multi-style net (the zoo branch's conditional instance norm) when the training API has it."""
    available = hasattr(train, "multi_style_objective")
    if ctx.recipe == "multi" and not available:
        raise RtstyleError("--recipe multi needs the multi-style training API (branch zoo), not merged here")
    return available and ctx.recipe != "single"


def seed_state(model_path: Path) -> int:
    """A carried model (fp16, from an earlier call) -> a training state to resume from: its weights,
    its step count, fresh Adam moments (the full states do not fit the 16 MiB a returned file may have)."""
    net, meta = checkpoint.load_model(model_path)
    step = int(meta.get("recipe", {}).get("iterations", 0))
    state = {"model": {k: v.float() for k, v in net.state_dict().items()},
             "optimizer": torch.optim.Adam(net.parameters()).state_dict(), "step": step, "meta": meta}
    checkpoint.save_training_state(model_path.with_suffix(".state.pt"), state)
    return step


def train_job(job: dict, deadline: float, first_chunk: int, min_chunk: int) -> None:
    """One model: ``rtstyle.train`` in chunks, each ending in a complete model and state, sized from the
    speed measured so far so that the last one ends before ``deadline``."""
    fn, out = getattr(train, job.pop("fn")), Path(job.pop("out"))
    done = job.pop("done", 0)
    chunk = first_chunk
    while chunk >= min_chunk:
        t0 = time.time()
        fn(**job, iterations=done + chunk, out=str(out), resume=True)
        done += chunk
        per_step = (time.time() - t0) / chunk  # the call's fixed cost included: errs on the short side
        chunk = int(0.9 * (deadline - time.time()) / per_step)
    print(f"gpu_kit: {job['name']}: {done} steps", flush=True)


def start_jobs(ctx: Context, todo: list[dict], deadline: float) -> list[tuple[dict, subprocess.Popen]]:
    first, least = (2, 1) if ctx.smoke else (200, 50)
    running = []
    for job in todo:
        code = (f"import json, sys; sys.path[:0] = {[str(ROOT / 'benchmarks'), str(ROOT)]!r}; import gpu_kit_steps as s; "
                f"s.train_job(json.loads(sys.argv[1]), {deadline}, {first}, {least})")
        running.append((job, subprocess.Popen([sys.executable, "-c", code, json.dumps(job)], start_new_session=True)))
    return running


def step_retrain(ctx: Context) -> None:
    res = Results(ctx.out / "train.json", keep=True, recipe=ctx.recipe, resumed_from=ctx.resume)
    multi = multi_style(ctx)
    res.set("retrain_multi_style", multi)
    folder = ctx.work / "retrain"
    folder.mkdir(exist_ok=True)
    if ctx.resume:
        with tarfile.open(ctx.resume) as tar:
            tar.extractall(folder, filter="data")
    todo = jobs(ctx, multi)
    for job in todo:
        job["out"] = str(folder / f"{job['name']}.safetensors")
        if Path(job["out"]).is_file() and not Path(job["out"]).with_suffix(".state.pt").is_file():
            job["done"] = seed_state(Path(job["out"]))
    deadline = ctx.deadline - (8 if ctx.smoke else 20)  # then time to stop stragglers and package
    for job, proc in start_jobs(ctx, todo, deadline):
        res.add("retrain_jobs", {"name": job["name"], "ended": stop_job(proc, deadline)})
    package(ctx, folder, res)


def stop_job(proc: subprocess.Popen, deadline: float) -> str:
    """Wait for a training process until ``deadline``, then interrupt it: its last finished chunk is
    a complete model, and the interrupted chunk's progress is saved in its training state."""
    try:
        return f"exit {proc.wait(timeout=max(0.1, deadline - time.time()))}"
    except subprocess.TimeoutExpired:
        pass
    for sig, grace in ((signal.SIGINT, 5), (signal.SIGKILL, 2)):
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace)
            return f"stopped at the deadline ({sig.name})"
        except subprocess.TimeoutExpired:
            continue
    return "did not stop"


def package(ctx: Context, folder: Path, res: Results) -> None:
    """fp16 safetensors + JSON cards of every trained model, and retrain.json, into models.tar."""
    ship = ctx.work / "ship"
    ship.mkdir(exist_ok=True)
    shipped = []
    for path in sorted(folder.glob("*.safetensors")):  # a multi-style file carries all its styles
        shipped.append(models.ship(path, ship))
    cards = [json.loads(p.with_suffix(".json").read_text()) for p in shipped]
    res.set("retrain_models", [{k: c.get(k) for k in ("name", "final_losses", "train_seconds", "hardware")} |
                       {"iterations": c["recipe"]["iterations"]} for c in cards])
    with tarfile.open(ctx.out / "models.tar", "w") as tar:
        for p in shipped:
            tar.add(p, p.name)
            tar.add(p.with_suffix(".json"), p.with_suffix(".json").name)
        tar.add(res.path, "retrain.json")
