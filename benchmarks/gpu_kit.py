"""The GPU kit (issue 15): every CUDA measurement and a GPU-scale retrain, in one call of about 8 minutes.

    make gpu-kit                                                   # here: packs .gpukit/, prints the device call
    python3 benchmarks/gpu_kit.py --carry .gpukit --out $OUT       # there, on the lent GPU (what make prints)
    python benchmarks/gpu_kit.py --smoke --carry DIR --out DIR     # here, on the CPU, in about a minute

Steps, each in its own process with its own time limit (a step that fails or overruns writes its
error into its result file and the kit goes on), in this order:

1. ``tests``: every test marked ``cuda`` (``pytest -m cuda``), log in ``cuda_tests.log``.
2. ``backends``: eager fp32/fp16, torch.compile fp16 (CUDA graphs), TensorRT if importable: FP16 vs
   FP32 PSNR and NaN/black checks of the shipped models on real photos, then fps at 256/512/1024
   square and 720p/1080p, batch 1 and 4 (``backends.json``).
3. ``table1``: the paper's Table 1, all Gatys iterations (``rtstyle.bench``; ``table1.json``).
4. ``pipeline``: ``rtstyle.stream.run_video`` at 720p and 1080p, YUV->RGB on the device and on the
   host, end-to-end fps against the net alone (``pipeline.json``).
5. ``train``: steps/s at 256 px batch 4, bf16, channels_last, eager and torch.compile (``train.json``).
6. ``retrain``: the shipped models retrained in the minutes left, all at once, returned as fp16
   safetensors with cards in ``models.tar`` (and a summary in ``train.json``); a later call given
   that tar resumes (``--resume``).

``kit.json`` holds the machine, versions and each step's outcome; ``kit.log`` every step's output.
That is the 8 files the device tool returns at most.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# (step, seconds on the GPU, seconds in smoke mode); retrain takes what is left of the budget.
STEPS = [("tests", 60, 60), ("backends", 110, 40), ("table1", 60, 40), ("pipeline", 90, 40), ("train", 70, 40),
         ("retrain", None, 30)]
RESULT_FILES = {"tests": "cuda_tests.log", "retrain": "train.json"}
MIN_RETRAIN = 45  # seconds: below this the retrain is skipped (it could not finish one chunk)


def result_name(step: str) -> str:
    return RESULT_FILES.get(step, f"{step}.json")


# ---------------------------------------------------------------- the parent: steps in turn, time-boxed

def run_step(step: str, limit: float, args: argparse.Namespace, log) -> dict:
    """Run one step in a child process killed (with its children) at ``limit`` seconds."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--step", step, "--limit", str(int(limit)),
           "--carry", args.carry, "--out", args.out, "--work", args.work, "--recipe", args.recipe]
    cmd += ["--smoke"] * args.smoke + (["--resume", args.resume] if args.resume else [])
    log.write(f"\n===== {step} (limit {limit:.0f} s): {' '.join(cmd)}\n")
    log.flush()
    t0 = time.time()
    child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        rc = child.wait(timeout=limit)
        outcome = "ok" if rc == 0 else f"failed (exit {rc})"
    except subprocess.TimeoutExpired:
        _kill(child)
        rc, outcome = None, f"stopped at its time limit of {limit:.0f} s"
    seconds = round(time.time() - t0, 1)
    if rc != 0:
        _record_error(Path(args.out) / result_name(step), step, outcome)
    return {"outcome": outcome, "seconds": seconds, "limit_s": round(limit)}


def _kill(child: subprocess.Popen) -> None:
    """SIGINT first (training saves its state), then SIGKILL the whole process group."""
    for sig, wait in ((signal.SIGINT, 8), (signal.SIGKILL, 5)):
        try:
            os.killpg(child.pid, sig)
            child.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


def _record_error(path: Path, step: str, outcome: str) -> None:
    """Keep what the step wrote and say how it ended."""
    if path.suffix == ".log":
        with open(path, "a") as f:
            f.write(f"\ngpu_kit: step {outcome}\n")
        return
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[f"kit_error_{step}"] = outcome
    path.write_text(json.dumps(data, indent=2) + "\n")


def environment(args: argparse.Namespace) -> dict:
    """The machine and versions, and what the carry says about itself."""
    import torch
    env = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda,
           "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
           "cpus": os.cpu_count(), "smoke": args.smoke, "budget_s": args.budget}
    for mod in ("av", "onnxruntime", "tensorrt", "torch_tensorrt", "triton"):
        try:
            env[mod] = __import__(mod).__version__
        except Exception as e:  # not installed there, or broken: say which
            env[mod] = f"not importable ({e.__class__.__name__})"
    try:
        env["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                                            "--format=csv,noheader"], capture_output=True, text=True,
                                           timeout=20).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        env["nvidia_smi"] = "not available"
    manifest = Path(args.carry) / "manifest.json"
    env["carry"] = json.loads(manifest.read_text()) if manifest.is_file() else None
    return env


def plan(args: argparse.Namespace) -> list[tuple[str, float | None]]:
    """(step, seconds) for the steps asked for, smoke or GPU limits."""
    only = set(args.only.split(",")) if args.only else None
    return [(name, smoke if args.smoke else gpu) for name, gpu, smoke in STEPS if only is None or name in only]


def orchestrate(args: argparse.Namespace) -> dict:
    started = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    Path(args.work).mkdir(parents=True, exist_ok=True)
    summary = {"command": " ".join(sys.argv), "environment": environment(args), "steps": {}}
    steps = plan(args)
    with open(out / "kit.log", "a") as log:
        for i, (step, seconds) in enumerate(steps):
            left = args.budget - (time.time() - started)
            later = sum(s or MIN_RETRAIN for _, s in steps[i + 1:])
            limit = left - 5 if seconds is None else min(seconds, max(10.0, left - later))
            if step == "retrain" and limit < (MIN_RETRAIN if not args.smoke else 10):
                summary["steps"][step] = {"outcome": f"skipped: only {limit:.0f} s left"}
                continue
            summary["steps"][step] = run_step(step, limit, args, log)
            print(f"gpu_kit: {step}: {summary['steps'][step]}", flush=True)
    summary["wall_seconds"] = round(time.time() - started, 1)
    (out / "kit.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


# ---------------------------------------------------------------- the child: one step

def run_child(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(ROOT))
    import gpu_kit_steps as steps
    ctx = steps.Context.make(args)
    getattr(steps, f"step_{args.step}")(ctx)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--carry", default=str(ROOT / ".gpukit"), help="The folder `make gpu-kit` packed")
    p.add_argument("--out", default=os.environ.get("OUT", "out/gpukit"), help="Where the result files go [$OUT]")
    p.add_argument("--work", default=None, help="Scratch folder [/tmp/gpukit-work]")
    p.add_argument("--budget", type=float, default=480, help="Seconds for the whole kit [480]")
    p.add_argument("--smoke", action="store_true", help="Tiny sizes on any device, in about a minute")
    p.add_argument("--only", help="Comma-separated steps to run (default: all)")
    p.add_argument("--recipe", default="auto", choices=("auto", "single", "multi"),
                   help="Retrain: one net per model in parallel (single), one multi-style net (multi: needs the "
                        "multi-style training API), or multi when available (auto)")
    p.add_argument("--resume", help="A models.tar from an earlier call: the retrain continues from it")
    p.add_argument("--step", help=argparse.SUPPRESS)
    p.add_argument("--limit", type=float, default=60, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.work = args.work or "/tmp/gpukit-work"
    if args.resume and not tarfile.is_tarfile(args.resume):
        p.error(f"--resume {args.resume} is not a tar file")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.step:
        run_child(args)
        return
    summary = orchestrate(args)
    failed = [s for s, r in summary["steps"].items() if r["outcome"] != "ok"]
    print(f"gpu_kit: done in {summary['wall_seconds']} s; results in {args.out}"
          + (f"; not ok: {', '.join(failed)}" if failed else ""))


if __name__ == "__main__":
    main()
