import av
import numpy as np
import pytest
from fractions import Fraction

from rtstyle.errors import RtstyleError
from rtstyle.writer import BT601, VideoWriter, atomic_video, container_format, encoder_name, quality_options


def test_frames_land_at_their_timestamps_padded_to_the_stream_size(tmp_path):
    path = tmp_path / "out.mkv"
    out = VideoWriter(path)
    out.add_video("libx264", 25, 34, 20, Fraction(1, 1000), quality_options("libx264", 10))
    for pts in (0, 40, 120):  # irregular timestamps survive
        out.write(np.full((19, 33, 3), 128, np.uint8), pts)  # odd frame, even stream: edge-padded
    out.finish()
    out.close()
    out.close()  # closing twice is harmless
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
    assert [round(f.time * 1000) for f in frames] == [0, 40, 120]
    assert (frames[0].width, frames[0].height) == (34, 20)
    assert abs(int(frames[0].to_ndarray(format="rgb24").mean()) - 128) <= 2


def test_colour_tags_and_rotation_come_from_the_source_frame(tmp_path):
    src = VideoWriter(tmp_path / "src.mp4")
    s = src.add_video("libx264", 25, 32, 16, Fraction(1, 25))
    s.set_display_rotation(90)
    src.write(np.zeros((16, 32, 3), np.uint8), 0)
    src.finish()
    src.close()
    with av.open(str(tmp_path / "src.mp4")) as c:
        first = next(c.decode(video=0))
    first.colorspace = 0  # an RGB-coded source: the output is tagged BT.601, not RGB
    out = VideoWriter(tmp_path / "out.mp4")
    out.add_video("libx264", 25, 32, 16, Fraction(1, 25), like=first)
    out.write(np.zeros((16, 32, 3), np.uint8), 0)
    out.finish()
    out.close()
    with av.open(str(tmp_path / "out.mp4")) as c:
        stream = c.streams.video[0]
        frame = next(c.decode(stream))
        assert stream.codec_context.colorspace == BT601
        assert frame.rotation in (90, -270, -90, 270)


def test_atomic_video_publishes_whole_files_only(tmp_path):
    dst = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError):
        with atomic_video(dst, "mp4") as (writer, tmp):
            writer.add_video("libx264", 25, 16, 16, Fraction(1, 25))
            writer.write(np.zeros((16, 16, 3), np.uint8), 0)
            raise RuntimeError("failed half way")
    assert list(tmp_path.iterdir()) == []  # neither the output nor a temporary file
    with atomic_video(dst, "mp4") as (writer, tmp):
        writer.add_video("libx264", 25, 16, 16, Fraction(1, 25))
        writer.write(np.zeros((16, 16, 3), np.uint8), 0)
        writer.finish()
    with av.open(str(dst)) as c:
        assert len(list(c.decode(video=0))) == 1
    assert list(tmp_path.iterdir()) == [dst]


def test_containers_and_encoders_by_name(tmp_path):
    assert container_format(tmp_path / "a.MKV") == "matroska"
    with pytest.raises(RtstyleError, match="AVI cannot keep the frames' timestamps"):
        container_format(tmp_path / "a.avi")
    assert encoder_name(None, "webm") == "libvpx-vp9" and encoder_name("hevc", "mp4") == "libx265"
    assert encoder_name("h264_nvenc", "mp4") == "h264_nvenc"
    assert quality_options("h264_nvenc", 20) == {"cq": "20"} and quality_options("libx264", None)["crf"] == "18"
