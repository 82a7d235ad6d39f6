"""The GPU kit (benchmarks/gpu_kit.py) end to end in its smoke mode: the carry packed, every step run
on the CPU at tiny sizes, the 8 result files checked, and a second call resuming the retrain."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from rtstyle.checkpoint import load_model

ROOT = Path(__file__).resolve().parents[1]
FILES = {"kit.json", "kit.log", "cuda_tests.log", "backends.json", "table1.json", "pipeline.json", "train.json",
         "models.tar"}


def run(args: list[str], vgg: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "RTSTYLE_VGG16": str(vgg), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def trained(tar_path: Path, tmp: Path) -> dict[str, int]:
    """{model name: iterations} of the models in a returned models.tar (each one loads)."""
    with tarfile.open(tar_path) as tar:
        tar.extractall(tmp, filter="data")
    return {p.stem: load_model(p)[1]["recipe"]["iterations"] for p in tmp.glob("*.safetensors")}


def test_smoke_end_to_end_and_resume(shared, vgg_weights, tmp_path):
    carry, out, work = tmp_path / "carry", tmp_path / "out", tmp_path / "work"
    packed = run(["benchmarks/gpu_kit_prepare.py", "--smoke", "--shared", str(shared), "--carry", str(carry)], vgg_weights)
    assert packed.returncode == 0, packed.stderr
    call = json.loads((carry / "device_call.json").read_text())
    assert len(call["command"]) <= 2000 and len(call["carry"]) <= 8 and call["timeout_s"] <= 600
    assert (carry / "vgg16_relu4_3_fp16.pth").stat().st_size < 16 * 2 ** 20

    done = run(["benchmarks/gpu_kit.py", "--smoke", "--carry", str(carry), "--out", str(out), "--work", str(work),
                "--budget", "400"], vgg_weights)
    assert done.returncode == 0, done.stdout + done.stderr
    assert set(os.listdir(out)) == FILES  # the device tool returns 8 files at most
    kit = json.loads((out / "kit.json").read_text())
    assert list(kit["steps"]) == ["tests", "backends", "table1", "pipeline", "train", "retrain"]
    assert "skipped" in (out / "cuda_tests.log").read_text()  # no CUDA here: every cuda test skips
    backends = json.loads((out / "backends.json").read_text())
    assert any("CUDA" in row.get("skipped", "") for row in backends["fp16_quality"])
    assert any(row.get("fps", 0) > 0 for row in backends["fps"])
    assert json.loads((out / "table1.json").read_text())["runs"][0]["table1"]
    rows = json.loads((out / "pipeline.json").read_text())["rows"]
    assert {r["yuv_on_device"] for r in rows if "end_to_end_fps" in r} == {True, False}
    first = trained(out / "models.tar", tmp_path / "first")
    assert set(first) == {"zoo", "sr_x4_feat"} and min(first.values()) > 0  # zoo: the multi-style net (candy alone here)

    again = run(["benchmarks/gpu_kit.py", "--smoke", "--carry", str(carry), "--out", str(tmp_path / "out2"),
                 "--work", str(tmp_path / "work2"), "--only", "retrain", "--resume", str(out / "models.tar")],
                vgg_weights)
    assert again.returncode == 0, again.stdout + again.stderr
    second = trained(tmp_path / "out2" / "models.tar", tmp_path / "second")
    assert all(second[name] > first[name] for name in first)  # resumed, not restarted
