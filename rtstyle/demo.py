"""``rtstyle demo`` (``make demo``): the bundled photo in every shipped style, and the bundled clip
stylized side by side with its original, sound kept.

The media (``rtstyle/media/``, about 140 KB) are licence-clean: *Chelsea the cat* by Stefan van der
Walt (CC0, from scikit-image's sample data) and four seconds of *Big Buck Bunny* (c) 2008 Blender
Foundation, www.bigbuckbunny.org, CC BY 3.0. ``benchmarks/demo_media.py`` made them.
"""
from __future__ import annotations

import time
from pathlib import Path

from rtstyle.backends import megapixel_frames
from rtstyle.errors import say
from rtstyle.frames import Options, process
from rtstyle.imageio import read_image, write_image
from rtstyle.models import list_models, open_model
from rtstyle.sheet import render
from rtstyle.stream import probe, run_video

MEDIA = Path(__file__).parent / "media"
PHOTO = MEDIA / "chelsea.jpg"   # 451x300, CC0
CLIP = MEDIA / "bunny.mp4"      # 384x216, 4 s, 24 fps, AAC; CC BY 3.0 (Blender Foundation)
CLIP_FRAMES = 96


def run_demo(out_dir: Path, style: str = "candy", backend: str = "auto") -> dict[str, Path]:
    """Write ``chelsea.sheet.png`` (the photo in every shipped style) and ``bunny.STYLE.mp4`` (the
    clip, original | stylized) with a still of its first frame into ``out_dir``, replacing the
    demo's own earlier results. Returns the written paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    styles = [name for name, path, _ in list_models("style") if path.parent == MEDIA.parent / "weights"]
    sheet = write_image(out_dir / "chelsea.sheet.png", render(read_image(PHOTO), styles, cell=320, columns=4),
                        overwrite=True)
    t_sheet = time.perf_counter() - t0
    first = probe(CLIP).to_ndarray(format="rgb24")
    # 4 s at 384x216: too short to pay for an ONNX export, so auto takes eager PyTorch unless one is built
    model = open_model(style, "style", backend, frames=megapixel_frames(CLIP_FRAMES, *first.shape[1::-1]))
    video = out_dir / f"bunny.{style}.mp4"
    report = run_video(CLIP, video, model, Options(side_by_side=True), overwrite=True)
    still = write_image(out_dir / f"bunny.{style}.png", process(model, first, Options(side_by_side=True)),
                        overwrite=True)
    say(f"demo: {PHOTO.name} in {len(styles)} styles in {t_sheet:.1f} s; {CLIP.name} through {style}: {report}")
    say(f"demo: open {sheet} (the photo in every style), {video} (original | {style}, with sound), "
        f"{still} (its first frame)")
    return {"sheet": sheet, "video": video, "still": still}
