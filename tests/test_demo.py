"""``rtstyle demo`` (what `make demo` runs): the bundled media, every shipped style, a playable clip,
and no one-off ONNX export or backend probe for a 4 s clip on a CPU."""
from __future__ import annotations

import av
import pytest

from rtstyle import demo
from rtstyle.backends import cache
from rtstyle.imageio import read_image


def test_clip_frames_is_the_bundled_clips_length():
    with av.open(str(demo.CLIP)) as c:
        assert sum(1 for _ in c.decode(video=0)) == demo.CLIP_FRAMES


@pytest.mark.skipif(not demo.list_models("style"), reason="no shipped style models")
def test_demo_writes_the_sheet_clip_and_still_without_an_export(tmp_path, monkeypatch, capsys):
    engines = tmp_path / "engines"
    monkeypatch.setenv(cache.ENGINE_DIR_ENV, str(engines))
    paths = demo.run_demo(tmp_path / "out", "candy", backend="auto")
    assert "backend auto: torch" in capsys.readouterr().err
    assert not list(engines.glob("*.onnx"))
    sheet, still = read_image(paths["sheet"]), read_image(paths["still"])
    assert sheet.shape[1] >= 4 * 320 and still.shape == (216, 2 * 384, 3)  # original | stylized
    with av.open(str(paths["video"])) as c:
        assert c.streams.audio and sum(1 for _ in c.decode(video=0)) == demo.CLIP_FRAMES
