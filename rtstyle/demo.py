"""``make demo``: stylize a clip rtstyle synthesizes itself with a shipped style, so it runs anywhere."""
from __future__ import annotations

import sys
from pathlib import Path

from rtstyle.frames import Options, process
from rtstyle.imageio import write_image
from rtstyle.models import open_model
from rtstyle.stream import run_video
from rtstyle.synth import make_clip, pattern


def run_demo(out_dir: Path, style: str = "candy", backend: str = "auto", frames: int = 72,
             size: tuple[int, int] = (480, 270)) -> tuple[Path, Path]:
    """Write ``demo.mp4`` (synthetic, with audio), its stylized version and a side-by-side still.

    The model is loaded once for both. Returns (stylized video, side-by-side PNG).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    model = open_model(style, "style", backend)
    clip = make_clip(out_dir / "demo.mp4", frames=frames, size=size, fps=24, audio=True)
    stylized = out_dir / f"demo.{style}.mp4"
    report = run_video(clip, stylized, model, Options(), overwrite=True)
    still = process(model, pattern(frames // 2, *size)[None], Options(side_by_side=True))[0]
    preview = write_image(out_dir / f"demo.{style}.png", still, overwrite=True)
    print(f"rtstyle demo: {report}\nrtstyle demo: input {clip}\nrtstyle demo: stylized video {stylized}\n"
          f"rtstyle demo: side-by-side still {preview}", file=sys.stderr)
    return stylized, preview
