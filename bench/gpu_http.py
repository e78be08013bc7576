"""End to end on the GPU machine (``bench/gpu.sh`` runs it after ``bench/gpu.py``): ResNet-50 (imagenet
preset, random weights) on ``/classify`` with a 224x224 JPEG, ConvServe with ``--workers N`` on CUDA
against a plain FastAPI endpoint running the same ONNX session on CUDA, loaded by ``bench/httpload.py``
(the machine has no wrk) at each client count. Runs on a CPU machine too (``--cpu``; ``--model`` a
committed classifier folder instead of ResNet-50), so the script itself is tested here. Prints one table.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.httpload import load  # noqa: E402
from service.launch import ServerProcess, free_port  # noqa: E402

CUDA = "CUDAExecutionProvider,CPUExecutionProvider"


def jpeg_224() -> bytes:
    """A smooth random colour image as a 224x224 JPEG (decoding cost like a photo's)."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (14, 14, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(small).resize((224, 224), Image.Resampling.BICUBIC).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def start(kind: str, repo: Path, model_dir: Path, workers: int, cpu: bool) -> ServerProcess:
    port = free_port()
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    if kind == "plain":
        cmd = [sys.executable, str(ROOT / "bench" / "plain_server.py"), str(model_dir), str(port), "ort"]
        env["PLAIN_PROVIDERS"] = "CPUExecutionProvider" if cpu else CUDA
    else:
        cmd = [sys.executable, "-m", "service", "--models", str(repo), "--port", str(port), "--workers", str(workers)]
        cmd += ["--providers", "cpu" if cpu else "cuda"]
        env |= {"CONVSERVE_LOG_LEVEL": "warning", "CONVSERVE_MAX_QUEUE_LENGTH": "4096"}
    return ServerProcess(cmd, port, ROOT, env, timeout_s=300)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 4))
    p.add_argument("--clients", default="1,64")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--load-processes", type=int, default=4)
    p.add_argument("--model", help="a committed classifier folder instead of ResNet-50 (smoke tests)")
    p.add_argument("--cpu", action="store_true", help="the CPU execution provider (a smoke test of the script)")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gpu-http-"))
    try:
        if args.model:
            model_dir = work / Path(args.model).name
            shutil.copytree(args.model, model_dir)
        else:
            from bench.resnet50 import make_resnet50_repo

            model_dir = make_resnet50_repo(work)
        body, jpeg = jpeg_224(), {"content-type": "image/jpeg"}
        table = []
        for kind in ("convserve", "plain"):
            server = start(kind, work, model_dir, args.workers, args.cpu)
            try:
                url = f"{server.url}/classify" + (f"?model={model_dir.name}" if kind == "convserve" else "")
                for _ in range(3):
                    httpx.post(url, content=body, headers=jpeg, timeout=120).raise_for_status()
                for c in (int(v) for v in args.clients.split(",")):
                    r = load(url, body, "image/jpeg", c, args.seconds, processes=min(args.load_processes, c))
                    table.append((kind, c, r))
                    print(f"{kind} c={c}: {r}", flush=True)
            finally:
                server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    label = model_dir.name + (" cpu" if args.cpu else " cuda")
    print(f"\n{label}: {'server':10s} {'clients':>7s} {'req/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s} {'non-2xx':>7s}")
    for kind, c, r in table:
        p50, p99 = (f"{r[k]:8.1f}" if r[k] is not None else "       -" for k in ("p50_ms", "p99_ms"))
        name = f"{kind} x{args.workers}" if kind == "convserve" else kind
        print(f"{label}: {name:10s} {c:7d} {r['rps']:9.1f} {p50} {p99} {r['non_2xx'] + r['socket_errors']:7d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
