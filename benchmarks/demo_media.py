"""How the demo's bundled media (``rtstyle/media/``) were made; rerun to rebuild them.

    python benchmarks/demo_media.py --bunny $RTSTYLE_SHARED/data/video/big_buck_bunny_0_30.webm \
        --chelsea path/to/skimage/data/chelsea.png

- ``bunny.mp4``: seconds 14.5-18.5 of *Big Buck Bunny* (c) 2008 Blender Foundation, CC BY 3.0,
  scaled to 384x216, H.264 CRF 27 with AAC audio.
- ``chelsea.jpg``: *Chelsea the cat* by Stefan van der Walt, CC0 (scikit-image's sample data),
  JPEG quality 92.
"""
from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import av
import cv2

OUT = Path(__file__).resolve().parents[1] / "rtstyle" / "media"


def bunny(src: Path, dst: Path, start: float = 14.5, seconds: float = 4.0, size=(384, 216)) -> None:
    with av.open(str(src)) as inp, av.open(str(dst), "w", options={"movflags": "+faststart"}) as out:
        vin, ain = inp.streams.video[0], inp.streams.audio[0]
        rate = vin.average_rate or Fraction(24)
        vout = out.add_stream("libx264", rate=rate, options={"crf": "27", "preset": "slow"})
        vout.width, vout.height, vout.pix_fmt = *size, "yuv420p"
        aout = out.add_stream("aac", rate=44100, layout="stereo")
        aout.bit_rate = 64000
        resampler = av.AudioResampler("fltp", "stereo", 44100)
        n_video, n_samples = 0, 0
        for packet in inp.demux(vin, ain):
            for frame in packet.decode():
                t = float(frame.pts * frame.time_base)
                if not start <= t < start + seconds:
                    continue
                if packet.stream is vin:
                    rgb = cv2.resize(frame.to_ndarray(format="rgb24"), size, interpolation=cv2.INTER_AREA)
                    f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                    f.pts, f.time_base = n_video, 1 / rate
                    out.mux(vout.encode(f))
                    n_video += 1
                else:
                    for f in resampler.resample(frame):
                        f.pts, f.time_base = n_samples, Fraction(1, 44100)
                        n_samples += f.samples
                        out.mux(aout.encode(f))
        out.mux(vout.encode(None))
        out.mux(aout.encode(None))


def chelsea(src: Path, dst: Path) -> None:
    cv2.imwrite(str(dst), cv2.imread(str(src)), [cv2.IMWRITE_JPEG_QUALITY, 92])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bunny", type=Path, required=True, help="big_buck_bunny_0_30.webm (the shared data's clip)")
    p.add_argument("--chelsea", type=Path, required=True, help="scikit-image's skimage/data/chelsea.png")
    args = p.parse_args()
    bunny(args.bunny, OUT / "bunny.mp4")
    chelsea(args.chelsea, OUT / "chelsea.jpg")
    for f in sorted(OUT.glob("*.*")):
        print(f"{f.name}: {f.stat().st_size} bytes")


if __name__ == "__main__":
    main()
