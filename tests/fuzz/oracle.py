"""What a correct run looks like: the input decoded independently of rtstyle (the reference), and the
checks an output must pass against it. Used by tests/test_robustness.py."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from rtstyle.imageio import read_image


@dataclass
class Reference:
    frames: int
    times: list[Fraction] | None   # display timestamps in seconds from the input's start (the output
    #                                starts at 0, as ffmpeg's does), None where the input has none to keep
    size: tuple[int, int]          # (width, height) of the first frame
    rotation: int
    audio: list[float]             # decodable seconds per audio track
    sar: Fraction = Fraction(1)    # sample aspect ratio (anamorphic video: not 1)
    tolerance: Fraction = Fraction(0)  # seconds the output's timestamps may differ by (joined files)


def picture_stream(c):
    """The video a player shows: the first video stream that is not cover art (an attached picture)."""
    return next((s for s in c.streams.video if not s.disposition & av.stream.Disposition.attached_pic), None)


def aspect(stream) -> Fraction:
    sar = stream.sample_aspect_ratio
    return Fraction(sar) if sar else Fraction(1)


def reference(path: Path) -> Reference | None:
    """Decode every video frame the way a player does (corrupt packets skipped); None if there is none."""
    try:
        with av.open(str(path), metadata_errors="replace") as c:
            v = picture_stream(c)
            if v is None:
                return None
            v.thread_type = "AUTO"
            start = round(Fraction(c.start_time or 0, av.time_base) / v.time_base)  # in ticks, as a muxer rounds
            frames, stamps, first = 0, [], None
            for packet in c.demux(v):
                try:
                    decoded = packet.decode()
                except av.error.InvalidDataError:
                    continue
                for f in decoded:
                    first = first or (f.width, f.height, f.rotation)
                    frames += 1
                    t = f.pts if f.pts is not None else f.dts
                    stamps.append(None if t is None else (t - start) * v.time_base)
            audio = [_audio_seconds(path, i) for i in range(len(c.streams.audio))]
            sar = aspect(v)
    except (av.error.FFmpegError, UnicodeDecodeError):
        return None
    if not frames:
        return None
    known = None not in stamps and len(set(stamps)) == len(stamps)
    return Reference(frames, sorted(stamps) if known else None, first[:2], first[2], audio, sar)


def joined(parts: list[Reference], starts: list[Fraction]) -> Reference:
    """What MPEG-TS files joined end to end play as in ffmpeg: a part whose clock jumps back from
    the previous one's, or ahead by more than 10 s, follows it (first frame one frame interval after
    the previous part's last); a smaller jump ahead is kept as a gap. The audio of all parts.
    Where the join is decided by an audio packet rather than a video one, sections may differ by an
    audio frame: tolerated."""
    times: list[Fraction] = []
    offset = Fraction(0)
    for ref, start in zip(parts, starts):
        step = ref.times[1] - ref.times[0]
        first = start - starts[0] + ref.times[0]  # on the first part's clock
        if times and not -Fraction(1, 10) <= first + offset - times[-1] <= 10:
            offset = times[-1] + step - first
        times += [t - ref.times[0] + first + offset for t in ref.times]
    audio = [sum(t) for t in zip(*(r.audio for r in parts))]
    return Reference(len(times), times, parts[0].size, parts[0].rotation, audio, parts[0].sar,
                     Fraction(1, 20) if audio else Fraction(0))


def _audio_seconds(path: Path, index: int) -> float:
    samples, rate = 0, 1
    with av.open(str(path), metadata_errors="replace") as c:
        s = c.streams.audio[index]
        rate = s.codec_context.sample_rate or 1
        for packet in c.demux(s):
            try:
                samples += sum(f.samples for f in packet.decode())
            except av.error.InvalidDataError:
                pass
    return samples / rate


def decode_strictly(path: Path) -> dict:
    """Every frame of an output file; any decoding error raises (an output must decode to the end)."""
    with av.open(str(path), metadata_errors="replace") as c:
        v = c.streams.video[0]
        frames = list(c.decode(v))
        info = {"frames": len(frames), "times": [f.pts * v.time_base for f in frames], "matrix": v.codec_context.colorspace,
                "sar": aspect(v), "codec": v.codec_context.name,
                "size": (frames[0].width, frames[0].height) if frames else None,
                "rotation": frames[0].rotation if frames else 0, "audio": []}
        tracks = len(c.streams.audio)
    for i in range(tracks):  # one pass per track: a pass reads the file to its end
        with av.open(str(path), metadata_errors="replace") as c:
            s = c.streams.audio[i]
            info["audio"].append(sum(f.samples for f in c.decode(s)) / s.codec_context.sample_rate)
    return info


def check_video(ref: Reference, out: Path, scale: int = 1, side_by_side: bool = False, exact: bool = True) -> dict:
    """The output holds every frame of the reference at its timestamp, the rotation, the audio tracks.

    ``exact``: the input is clean, so the audio lengths must match too (a damaged input's audio may
    lose packets the reference decoder still reads)."""
    got = decode_strictly(out)
    assert got["frames"] == ref.frames, f"{got['frames']} frames written, the input has {ref.frames}"
    times = got["times"]
    assert all(a < b for a, b in zip(times, times[1:])), "timestamps not strictly increasing"
    if ref.times is not None:
        matroska = out.suffix in (".mkv", ".webm")
        tol = max(ref.tolerance, Fraction(1, 1000) if matroska else Fraction(0))  # Matroska counts in milliseconds
        # Matroska cannot start a track before 0: audio that starts early (AAC priming, 21 ms) shifts
        # every stream by as much, as FFmpeg does. The frames keep their spacing, and the sync.
        offset = times[0] - ref.times[0] if matroska and ref.audio and times else 0
        assert -tol <= offset <= Fraction(1, 10), f"first frame at {float(times[0])} s, the input's at {float(ref.times[0])} s"
        bad = [(a, b) for a, b in zip(times, ref.times) if abs(a - offset - b) > tol]
        assert not bad, f"timestamps differ from the input's: {[(float(a), float(b)) for a, b in bad[:3]]}"
    w, h = ref.size
    ow, oh = w * scale * (2 if side_by_side else 1), h * scale
    assert got["size"] == (ow + ow % 2, oh + oh % 2), (got["size"], (ow, oh))
    assert got["rotation"] == ref.rotation
    sar = Fraction(1) if got["codec"] in ("vp8", "vp9", "av1", "libdav1d") else ref.sar  # (no aspect field: said)
    assert got["sar"] == sar, f"sample aspect ratio {got['sar']}, the input's is {ref.sar}"
    assert got["matrix"] != 0, "YUV frames tagged with the RGB matrix: players show wrong colours"
    # A damaged input's track with no decodable packet left may be dropped.
    tracks = (len(ref.audio),) if exact else (len(ref.audio), len([a for a in ref.audio if a > 0]))
    assert len(got["audio"]) in tracks, f"{len(got['audio'])} audio tracks, the input has {len(ref.audio)}"
    if exact:
        for a, b in zip(ref.audio, got["audio"]):
            assert abs(a - b) <= 0.05 + 0.02 * a, f"audio {b:.3f} s, the input has {a:.3f} s"
    return got


def check_image(src: Path, out: Path, scale: int = 1, side_by_side: bool = False) -> None:
    h, w, _ = read_image(src).shape
    got = read_image(out).shape
    assert got == (h * scale, w * scale * (2 if side_by_side else 1), 3), (got, (h, w))


def digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (symlinks by their target's content)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(folder: Path) -> list[str]:
    """Temporary files rtstyle may have left (atomic writes use ``.NAME.*.part``)."""
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".part") or ".part" in p.name)
