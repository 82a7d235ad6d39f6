"""``make gpu-kit``: pack what the GPU kit needs into ``.gpukit/`` (git-ignored) and print the device call.

    python benchmarks/gpu_kit_prepare.py                          # the full kit (about 8 minutes there)
    python benchmarks/gpu_kit_prepare.py --resume OUT/models.tar  # a second call: retrain only, resumed
    python benchmarks/gpu_kit_prepare.py --smoke --carry DIR      # a tiny carry for the CPU smoke run

The device tool moves at most 64 MiB a call: the working tree (tracked and untracked-not-ignored
files) plus the carry. What goes, and how it is made to fit:

- ``vgg16_relu4_3_fp16.pth``: VGG-16's features up to relu4_3 (the only layers the losses use), fp16:
  14.7 MB instead of the shared file's 58.9 MB (fp32, all 13 convs). The loss is computed in fp32
  or bf16 autocast from these weights; the model cards record this file's content hash.
- ``pyav.tar.xz``: PyAV for CPython 3.12 manylinux x86_64 (the device has none), the version this
  venv runs, from ``pip download``; the wheel (41 MB) unpacked, its Cython modules' debug symbols
  stripped and sources dropped, then xz: about 23 MB. It needs no other package (Requires-Dist).
- ``data.tar``: the style images (longer side 512), PSNR photos (Set5 and BSD100, 256 px centre
  crops), ``chaplin.mp4``, and as many training photos (256 px centre crops, JPEG q85) as the rest
  of the 64 MiB holds, in a fixed shuffled order; the count is printed and kept in the manifest.
- ``models.tar`` (``--resume``): an earlier call's models; then PyAV stays behind (the retrain does
  not need it) and the photos fill its space.
"""
from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from rtstyle.vgg import STYLE_LAYERS, VGG16Features, load_state  # noqa: E402

LIMIT = 64 * 2 ** 20        # bytes a device call may move (working tree + carry)
MARGIN = 2 * 2 ** 20        # left free: files changed after packing, tar headers
STYLES = ("candy", "muse", "starry_night", "wave", "composition_vii", "the_scream", "mosaic", "udnie",
          "rain_princess", "feathers")
PSNR_PHOTOS = ("Set5/baby.png", "Set5/bird.png", "Set5/butterfly.png", "Set5/head.png", "Set5/woman.png",
               "BSD100/101085.png", "BSD100/126007.png", "BSD100/148026.png")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
BUDGET_S, TIMEOUT_S = 480, 570   # the kit's own budget; the device call's limit (10 min at most)


def tree_bytes() -> int:
    """What the device tool sends besides the carry: tracked and untracked-not-ignored files."""
    names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.split(b"\0")
    return sum((ROOT / n.decode()).stat().st_size for n in names if n and (ROOT / n.decode()).is_file())


def pack_vgg(dest: Path) -> None:
    """VGG-16 features up to relu4_3, fp16, as a plain state dict (loaded with weights_only)."""
    state, _ = load_state()
    wanted = VGG16Features(STYLE_LAYERS).features.state_dict().keys()
    torch.save({k: state[k].half() for k in wanted}, dest)


def pack_pyav(carry: Path) -> dict:
    """PyAV for the device's Python 3.12, stripped and xz-compressed (cached by version)."""
    import av
    dest, info_path = carry / "pyav.tar.xz", carry / "pyav.json"
    if dest.is_file() and info_path.is_file() and json.loads(info_path.read_text())["version"] == av.__version__:
        return json.loads(info_path.read_text())
    wheels = carry / "wheels"
    platforms = [a for p in PLATFORMS for a in ("--platform", p)]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp", *platforms, "-d", str(wheels),
                    f"av=={av.__version__}"], check=True)
    wheel = next(wheels.glob(f"av-{av.__version__}-*.whl"))  # cp312, or abi3 for cp311 and later
    unpacked = carry / "pyav"
    shutil.rmtree(unpacked, ignore_errors=True)
    shutil.unpack_archive(wheel, unpacked, "zip")
    requires = [line for line in next(unpacked.glob("*.dist-info/METADATA")).read_text().splitlines()
                if line.startswith("Requires-Dist") and "extra ==" not in line]
    for so in (unpacked / "av").rglob("*.so"):  # the bundled FFmpeg libraries (av.libs) are left as built
        subprocess.run(["strip", "--strip-unneeded", str(so)], check=True)
    for src in (unpacked / "av").rglob("*"):
        if src.suffix in (".pyx", ".pxd", ".pyi", ".c"):
            src.unlink()
    subprocess.run(["tar", "-cJf", str(dest), "-C", str(unpacked), "."], check=True, env={"XZ_OPT": "-6 -T2"})
    info = {"version": av.__version__, "wheel": wheel.name, "wheel_bytes": wheel.stat().st_size,
            "packed_bytes": dest.stat().st_size, "requires_dist": requires}
    shutil.rmtree(unpacked)
    shutil.rmtree(wheels)
    info_path.write_text(json.dumps(info, indent=2) + "\n")
    return info


def centre_crop(rgb: np.ndarray, size: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = size / min(h, w)
    rgb = cv2.resize(rgb, (max(size, round(w * s)), max(size, round(h * s))), interpolation=cv2.INTER_AREA)
    y, x = (rgb.shape[0] - size) // 2, (rgb.shape[1] - size) // 2
    return rgb[y:y + size, x:x + size]


def add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def add_jpeg(tar: tarfile.TarFile, name: str, bgr: np.ndarray, quality: int) -> int:
    data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()
    add_bytes(tar, name, data)
    return len(data) + 1024  # header and padding


def pack_data(dest: Path, shared: Path, budget: int, smoke: bool) -> dict:
    """Styles, PSNR photos, the clip, then training photos until ``budget`` bytes are used."""
    size = 64 if smoke else 256
    used, count = 0, 0
    with tarfile.open(dest, "w") as tar:
        for name in STYLES[:1] if smoke else STYLES:
            bgr = cv2.imread(str(shared / "data/styles" / f"{name}.jpg"))
            s = min(1.0, (128 if smoke else 512) / max(bgr.shape[:2]))
            used += add_jpeg(tar, f"styles/{name}.jpg", cv2.resize(bgr, None, fx=s, fy=s, interpolation=cv2.INTER_AREA), 92)
        for rel in PSNR_PHOTOS[:2] if smoke else PSNR_PHOTOS:
            crop = centre_crop(cv2.imread(str(shared / "data/sr" / rel)), 32 if smoke else 256)
            used += add_jpeg(tar, f"photos/{Path(rel).stem}.jpg", crop, 95)
        for path in sorted((shared / "data/content").glob("*.jpg")):  # the CUDA tests' real images
            tar.add(path, f"content/{path.name}")
            used += path.stat().st_size
        tar.add(shared / "data/video/chaplin.mp4", "video/chaplin.mp4")
        used += (shared / "data/video/chaplin.mp4").stat().st_size
        photos = sorted((shared / "data/train").glob("*.jpg"))
        random.Random(0).shuffle(photos)
        for path in photos[:8] if smoke else photos:
            bgr = cv2.imread(str(path))
            if bgr is None:
                continue
            n = add_jpeg(tar, f"train/{path.name}", centre_crop(bgr, size), 85)
            used, count = used + n, count + 1
            if used > budget:
                break
    return {"train_photos": count, "train_photos_available": len(photos), "train_photo_px": size,
            "data_bytes": dest.stat().st_size}


def carried(carry: Path, resume: bool) -> list[Path]:
    """The files the call carries (named one by one: ``.gpukit`` may hold a PyAV pack a resume leaves behind)."""
    names = ["vgg16_relu4_3_fp16.pth", "data.tar", "manifest.json"] + (["models.tar"] if resume else ["pyav.tar.xz"])
    return [carry / n for n in names]


def device_call(carry: Path, resume: bool) -> dict:
    """The one `run` call of the device tool that runs the kit."""
    py = "export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 RTSTYLE_ENGINE_DIR=/tmp/engines"
    if resume:
        kit = f"python3 benchmarks/gpu_kit.py --carry .gpukit --out $OUT --only retrain --resume .gpukit/models.tar --budget {BUDGET_S}"
    else:
        py = "mkdir -p /tmp/site && tar -xJf .gpukit/pyav.tar.xz -C /tmp/site && " + py.replace("$PWD", "/tmp/site:$PWD")
        kit = f"python3 benchmarks/gpu_kit.py --carry .gpukit --out $OUT --budget {BUDGET_S}"
    command = f"{py} && nvidia-smi; {kit}"
    assert len(command) <= 2000
    return {"command": command, "carry": [os.path.relpath(p, ROOT) for p in carried(carry, resume)],
            "timeout_s": TIMEOUT_S}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--carry", default=str(ROOT / ".gpukit"))
    p.add_argument("--shared", default=str(ROOT.parent / "shared"), help="The shared data folder [../shared]")
    p.add_argument("--resume", help="models.tar from an earlier call: pack a retrain-only carry that resumes it")
    p.add_argument("--smoke", action="store_true", help="A tiny carry (8 photos, no PyAV) for the CPU smoke run")
    args = p.parse_args()
    carry, shared = Path(args.carry), Path(args.shared)
    carry.mkdir(parents=True, exist_ok=True)
    for stale in ("data.tar", "models.tar"):
        (carry / stale).unlink(missing_ok=True)
    pack_vgg(carry / "vgg16_relu4_3_fp16.pth")
    manifest = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                         text=True).stdout.strip(), "smoke": args.smoke}
    if args.resume:
        shutil.copy(args.resume, carry / "models.tar")
    elif not args.smoke:
        manifest["pyav"] = pack_pyav(carry)
    fixed = tree_bytes() + sum(f.stat().st_size for f in carried(carry, bool(args.resume)) if f.is_file()) + 4096
    manifest |= pack_data(carry / "data.tar", shared, LIMIT - MARGIN - fixed, args.smoke)
    (carry / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    report(carry, manifest, args)


def report(carry: Path, manifest: dict, args: argparse.Namespace) -> None:
    """Check the 64 MiB and print the call to make."""
    moved = sum(f.stat().st_size for f in carried(carry, bool(args.resume)) if f.is_file())
    total = tree_bytes() + moved
    print(f"gpu-kit: {manifest['train_photos']} of {manifest['train_photos_available']} training photos packed; "
          f"working tree {tree_bytes() / 2**20:.1f} MiB + carry {moved / 2**20:.1f} MiB = {total / 2**20:.1f} MiB "
          f"(limit {LIMIT / 2**20:.0f} MiB)")
    if total > LIMIT:
        sys.exit(f"gpu-kit: error: {total / 2**20:.1f} MiB would travel, more than the device tool's 64 MiB")
    call = device_call(carry, bool(args.resume))
    print("gpu-kit: the device call (tool `run`):\n" + json.dumps(call, indent=2))
    (carry / "device_call.json").write_text(json.dumps(call, indent=2) + "\n")


if __name__ == "__main__":
    main()
