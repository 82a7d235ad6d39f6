"""Input timestamps -> output timestamps: an output plays like its input plays in ffmpeg.

- **Start at 0.** Every timestamp is shifted by the input's start time (the earliest first timestamp
  of its streams, ``start_time``), as ffmpeg does: an MPEG-TS whose clock starts at 1.4 s or at 10
  hours gives an output that starts at 0, and the streams keep their relative sync. A raw stream
  (no container) starts at its first frame.
- **Joined files.** In the containers FFmpeg marks as having timestamp discontinuities (MPEG-TS,
  MPEG-PS: files joined with ``cat``, broadcast recordings), a timestamp that jumps back, or forward
  by more than 10 s, starts a new section (ffmpeg's ``-dts_delta_threshold`` rule): one offset,
  shared by every stream, makes it follow the previous one, so the second file plays after the first.
- **Copied packets never go back.** A muxer refuses a decode timestamp that goes back (MP4: or that
  repeats); such a packet (TrueHD's 0.83 ms frames in millisecond Matroska timestamps, the overlap at
  a join) is moved just after its predecessor instead of dropped, as ffmpeg does, so no audio is lost.
"""
from __future__ import annotations

from fractions import Fraction

import av

DISCONTINUITY = 10  # seconds: a forward jump larger than this is a discontinuity (ffmpeg's default threshold)
BACKWARDS = Fraction(1, 10)  # seconds: a jump back by more than this is one too


class Timeline:
    """Shifts demuxed packets of one input onto the output's timeline, in place (``shift``).

    Each section of a joined file has one offset; each stream enters the next section when its own
    timestamps jump (a stream's last packets of one part may come after another's first of the next:
    interleaving is loose), and the first stream to get there sets the section's offset."""

    def __init__(self, inp: av.container.InputContainer):
        self.discontinuous = bool(inp.format.flags & av.format.Flags.ts_discont.value)
        # Seconds added to every timestamp; a raw stream's start is not known: its first packet's then.
        self.offsets = [None if inp.start_time is None else -Fraction(inp.start_time, av.time_base)]
        self.section: dict[int, int] = {}    # per stream: the section it is in
        self.last: dict[int, Fraction] = {}  # per stream: the last decode time (s, output timeline)
        self.next: dict[int, Fraction] = {}  # per stream: where the next packet is expected

    def shift(self, packet: av.Packet, duration: Fraction = Fraction(0)) -> None:
        """Move ``packet`` onto the output timeline. ``duration`` (s) stands in for a packet that has none."""
        tb = packet.time_base
        t = packet.dts if packet.dts is not None else packet.pts
        if t is None or tb is None:
            return
        if self.offsets[0] is None:
            self.offsets[0] = -(packet.pts if packet.pts is not None else t) * tb
        index = packet.stream.index
        if self.discontinuous:
            self._follow(index, t * tb, packet.duration * tb if packet.duration else duration)
        ticks = round(self.offsets[self.section.get(index, 0)] / tb)
        if packet.pts is not None:
            packet.pts += ticks
        if packet.dts is not None:
            packet.dts += ticks

    def _follow(self, stream: int, t: Fraction, duration: Fraction) -> None:
        k = self.section.setdefault(stream, 0)
        now, expected = t + self.offsets[k], self.next.get(stream)
        if expected is not None and (now - expected > DISCONTINUITY or now + BACKWARDS < self.last[stream]):
            k = self.section[stream] = k + 1  # a new section: it continues where this stream left off
            if k == len(self.offsets):
                self.offsets.append(self.offsets[k - 1] + expected - now)
            now = t + self.offsets[k]
        self.last[stream], self.next[stream] = now, now + duration


class Monotonic:
    """Decode timestamps of copied packets that a muxer accepts: strictly increasing, or (``strict``
    False: Matroska, WebM) non-decreasing, in the output stream's time base."""

    def __init__(self, strict: bool):
        self.strict = strict
        self.last: dict[int, int] = {}

    def fix(self, packet: av.Packet, tb: Fraction) -> bool:
        """Rebase ``packet`` to ``tb`` (the output stream's) and move it after its predecessor if it
        would go back; True if it had to be moved."""
        if packet.dts is None:
            return False
        pts, dts = (_rescale(packet.pts, packet.time_base, tb) if packet.pts is not None else None,
                    _rescale(packet.dts, packet.time_base, tb))
        index = packet.stream.index
        floor = self.last.get(index, dts) + (1 if self.strict and index in self.last else 0)
        moved = dts < floor
        if moved:
            pts, dts = (None if pts is None else max(pts, floor)), floor
        packet.time_base, packet.dts, packet.pts = tb, dts, pts
        self.last[index] = dts
        return moved


def _rescale(value: int, src: Fraction, dst: Fraction) -> int:
    """``value`` ticks of ``src`` in ticks of ``dst``, rounded to nearest.

    >>> _rescale(1024, Fraction(1, 48000), Fraction(1, 1000))
    21
    """
    return round(value * src / dst)
