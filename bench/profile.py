"""Where a server's time goes under load: py-spy samples the server while wrk drives it.

``python bench/profile.py [--kind convserve|plain] [--clients 32] [--seconds 10] [--workload lenet5|resnet50]``
starts the server (``bench/servers.py``; ConvServe with its whole model repository, or the plain FastAPI
endpoint), loads it from wrk with the benchmark's own request, records py-spy's stacks at 200 Hz (GIL-holding
and idle frames alike: ``--idle``), and prints the share of samples in which each part of the request path is
on the stack (inclusive), plus the top functions by own time. Text and the raw stacks go to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.load import wrk  # noqa: E402

# parts of the request path, matched against py-spy's frame names ("function (file:line)")
PARTS = {
    "request body read (uvicorn / Starlette)": ("service/inputs.py", "receive ("),
    "image decode + preprocessing (ours, shared with plain)": ("preprocess", "decode ("),
    "digit framing (frame_digit)": ("frame_digit",),
    "ONNX Runtime run": ("run (onnxruntime",),
    "batcher (queue, futures)": ("service/batcher.py",),
    "response encoding + send": ("JSONResponse", "render (", "send ("),
    "middleware": ("service/middleware.py",),
    "routing / FastAPI request machinery": ("fastapi/routing.py", "starlette/routing.py"),
}
# frames that, as the innermost Python frame, mean the loop is waiting or inside the loop's own C code: asyncio's
# select, or under uvloop (written in C, no Python frames of its own) the runner that started it
LOOP_LEAVES = ("select (selectors", "Runner.run (asyncio", "run_forever (asyncio")
IDLE = "event loop idle or in its own C code (innermost frame: select / the runner)"


def _samples(collapsed: str) -> list[tuple[str, list[str], int]]:
    """py-spy's raw output recorded with ``--threads`` -> (thread name, frames root first, count) per line."""
    out = []
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        thread = frames[0].split(": ", 1)[-1] if frames[0].startswith("thread (") else ""
        out.append((thread, frames[1:] if frames[0].startswith("thread (") else frames, int(count)))
    return out


def inclusive_shares(
    collapsed: str, thread: str = "MainThread", parts: dict[str, tuple[str, ...]] = PARTS
) -> tuple[dict[str, float], int]:
    """The share of ``thread``'s samples in which a frame matching each part is on the stack (a sample counts
    once per part), and that thread's number of samples."""
    shares: Counter = Counter()
    total = 0
    for name, frames, n in _samples(collapsed):
        if name != thread:
            continue
        total += n
        stack = ";".join(frames)
        for part, needles in parts.items():
            if any(nd in stack for nd in needles):
                shares[part] += n
        if frames and frames[-1].startswith(LOOP_LEAVES):
            shares[IDLE] += n
    return {p: shares[p] / total if total else 0.0 for p in [*parts, IDLE]}, total


def threads(collapsed: str) -> dict[str, tuple[int, float]]:
    """Per thread name: samples, and the share of them inside ONNX Runtime's run (inference threads)."""
    seen: Counter = Counter()
    in_ort: Counter = Counter()
    for name, frames, n in _samples(collapsed):
        seen[name] += n
        if any(PARTS["ONNX Runtime run"][0] in f for f in frames):
            in_ort[name] += n
    return {t: (n, in_ort[t] / n) for t, n in seen.most_common()}


def own_time(collapsed: str, thread: str = "MainThread", top: int = 15) -> list[tuple[str, float]]:
    """``thread``'s leaf frames with the most samples (own time), as shares of its samples."""
    leaves: Counter = Counter()
    for name, frames, n in _samples(collapsed):
        if name == thread and frames:
            leaves[frames[-1]] += n
    total = sum(leaves.values())
    return [(f, n / total) for f, n in leaves.most_common(top)] if total else []


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kind", default="convserve", choices=["convserve", "plain"])
    p.add_argument("--workload", default="lenet5", choices=["lenet5", "resnet50"])
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--seconds", type=float, default=10)
    args = p.parse_args()
    for tool in ("wrk", "py-spy"):
        if shutil.which(tool) is None and not (Path(sys.executable).parent / tool).exists():
            print(f"{tool} is needed (wrk: apt-get install -y wrk; py-spy: the dev extra)", file=sys.stderr)
            return 2
    from bench.run import workloads
    from bench.servers import Server

    w = workloads(args.workload)[0]
    repo = Path(tempfile.mkdtemp(prefix="profile-")) / "repo"  # the model alone, as the benchmark serves it
    shutil.copytree(w.model_dir, repo / w.model_dir.name)
    server = Server(args.kind, repo, repo / w.model_dir.name)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = out_dir / f"profile-{stamp}-{args.kind}-{args.workload}.stacks"
    try:
        with tempfile.NamedTemporaryFile(suffix=".body") as f:
            f.write(w.body)
            f.flush()
            wrk(server.url + w.path, Path(f.name), w.ctype, args.clients, 2)  # warm-up
            load: dict = {}
            t = threading.Thread(
                target=lambda: load.update(wrk(server.url + w.path, Path(f.name), w.ctype, args.clients, args.seconds))
            )
            t.start()
            spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            cmd = [spy, "record", "--format", "raw", "--rate", "200", "--idle", "--threads", "--nonblocking"]
            cmd += ["--duration", str(max(1, int(args.seconds) - 1)), "--output", str(raw), "--pid"]
            subprocess.run(cmd + [str(server.server.proc.pid)], check=True, capture_output=True)
            t.join()
    finally:
        server.stop()
        shutil.rmtree(repo.parent, ignore_errors=True)
    collapsed = raw.read_text()
    shares, total = inclusive_shares(collapsed)
    lines = [
        f"{args.kind}, {w.label}, {args.clients} clients, {args.seconds:.0f} s: {load.get('rps', 0):.0f} req/s "
        f"while profiled (p50 {load.get('p50_ms', 0):.2f} ms); {total} samples of the event loop's thread at "
        "200 Hz, idle included",
        "",
        "threads (samples, share inside ONNX Runtime's run):",
        *(f"  {n:6d}  {share:6.1%}  {name}" for name, (n, share) in threads(collapsed).items()),
        "",
        "event loop thread: share of samples with the part on the stack (inclusive):",
        *(f"  {v:6.1%}  {k}" for k, v in sorted(shares.items(), key=lambda kv: -kv[1])),
        "",
        "event loop thread: top frames by own time:",
        *(f"  {v:6.1%}  {k}" for k, v in own_time(collapsed)),
    ]
    text = "\n".join(lines) + "\n"
    (out_dir / f"profile-{stamp}-{args.kind}-{args.workload}.txt").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
