"""``make bench``: raw ONNX Runtime vs end-to-end HTTP, and ConvServe vs what users would build instead.

Measured side by side in one run on one machine (load from ``wrk``, a separate process):
- the limit: raw ORT per model at several batch sizes (the service's session options);
- ConvServe over HTTP at 1, 8, 32 and 128 clients: batching on and off, one process and ``--workers 2``;
  for ResNet-50 also ``preferred``: its config.pbtxt given ``preferred_batch_size`` = the best raw batch;
- a plain FastAPI endpoint running the same ONNX session per request, and one running the PyTorch
  network eagerly; for LeNet-5 (64x64 PNG) and ResNet-50 (imagenet preset, random weights, 224x224 JPEG);
- the v2 protocol with a binary tensor (LeNet-5), the segmentation, denoising and nowcast models at
  native size on their endpoints;
- cold start to /health/ready with every committed model, RSS after warm-up and after 10k requests.
Prints the table and the issue's ratios; writes bench/results/<stamp>.json/.txt and a PNG plot.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.load import wrk  # noqa: E402
from bench.report import report  # noqa: E402
from bench.servers import Server  # noqa: E402
from bench.workloads import Workload, classify_workload, raw_throughput, task_workloads, v2_workload  # noqa: E402
from service.launch import ServerProcess, free_port  # noqa: E402

CONCURRENCY = (1, 8, 32, 128)
CLASSIFY_KINDS = ("convserve", "nobatch", "workers2", "plain", "plain_torch")


def bench_workload(w: Workload, seconds: float, raw_s: float) -> dict:
    """Raw ORT, then every server kind at every concurrency."""
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    repo = work / "repo"
    shutil.copytree(w.model_dir, repo / w.model_dir.name)
    body = work / "body"
    body.write_bytes(w.body)
    print(f"[{w.label}] raw ONNX Runtime ...", flush=True)
    result = {"raw_per_s": raw_throughput(w.model_dir, w.raw_input, w.raw_batches, raw_s), "http": {}, "note": w.note}
    for kind in w.kinds:
        here = repo
        if kind == "preferred":  # ConvServe told the batch size the raw measurement found best
            best = max(result["raw_per_s"], key=result["raw_per_s"].get)
            here = with_preferred_batch(repo, work / "repo_preferred", w.model_dir.name, best)
            result["preferred_batch"] = best
        server = Server("convserve" if kind == "preferred" else kind, here, here / w.model_dir.name)
        try:
            headers = {"content-type": w.ctype} | (dict([w.header.split(": ", 1)]) if w.header else {})
            for _ in range(3):  # warm: first requests pay for lazy initialisation
                httpx.post(server.url + w.path, content=w.body, headers=headers, timeout=120).raise_for_status()
            if not kind.startswith("plain"):  # ConvServe kinds
                tuning = wait_for_batch_tuning(server.url, w.model_dir.name)
                result.setdefault("batch_tuning", {})[kind] = tuning
            for c in CONCURRENCY:
                print(f"[{w.label}] {kind:11s} {c:3d} clients ...", flush=True)
                result["http"].setdefault(kind, {})[c] = wrk(server.url + w.path, body, w.ctype, c, seconds, w.header)
        finally:
            server.stop()
    shutil.rmtree(work, ignore_errors=True)
    return result


def wait_for_batch_tuning(url: str, model: str, timeout_s: float = 60.0) -> dict:
    """Wait until ConvServe's warm-up batch tuning (``service.batch_tune``) is done for every model it applies
    to - it sweeps the models one after another once all are ready, so no measured point competes with it -
    and return ``model``'s preferred sizes and timings."""
    deadline = time.monotonic() + timeout_s
    pending = {m["name"] for m in httpx.get(f"{url}/models", timeout=30).json()["models"]}
    info: dict = {}
    while pending and time.monotonic() < deadline:
        for name in sorted(pending):
            m = httpx.get(f"{url}/models/{name}", timeout=30).json()
            timings, preferred = m.get("batch_tuning_ms_per_row"), m.get("preferred_batch_sizes")
            fixed = isinstance(((m.get("card") or {}).get("input") or {}).get("height"), int)  # any-size: not tuned
            if timings is not None or preferred or not fixed or (m.get("max_batch_size") or 1) < 2:
                pending.discard(name)
                info[name] = {"preferred": preferred, "ms_per_row": timings}
            elif m.get("status") != "ready":  # an unavailable model is never tuned
                pending.discard(name)
        if pending:
            time.sleep(0.2)
    return info.get(model) or {"preferred": None, "ms_per_row": None}


def with_preferred_batch(repo: Path, dest: Path, model: str, batch: int) -> Path:
    """A copy of ``repo`` whose ``model`` has Triton's ``dynamic_batching { preferred_batch_size: [batch] }``."""
    shutil.copytree(repo, dest)
    cfg = dest / model / "config.pbtxt"
    text = cfg.read_text()
    preferred = f"dynamic_batching {{ preferred_batch_size: [ {batch} ] }}"
    empty = "dynamic_batching { }"
    cfg.write_text(text.replace(empty, preferred) if empty in text else text + "\n" + preferred + "\n")
    return dest


def cold_start(models: Path, runs: int = 3) -> dict:
    """Seconds from process start to /health/ready 200 with every model in ``models`` (median of ``runs``)."""
    times = []
    for _ in range(runs):
        port = free_port()
        t0 = time.perf_counter()
        server = ServerProcess(
            [sys.executable, "-m", "service", "--models", str(models), "--port", str(port)], port, ROOT
        )
        times.append(time.perf_counter() - t0)
        n = len(httpx.get(f"{server.url}/models", timeout=10).json().get("models", []))
        server.stop()
    return {"median_s": statistics.median(times), "runs_s": times, "models": n}


def memory(models: Path, w: Workload, n: int = 10_000) -> dict:
    """RSS of the service (all committed models) after warm-up and after ``n`` more requests of ``w``."""
    server = Server("convserve", models)
    body = Path(tempfile.mkdtemp(prefix="bench-mem-")) / "body"
    body.write_bytes(w.body)
    try:
        for _ in range(50):
            httpx.post(server.url + w.path, content=w.body, headers={"content-type": w.ctype}, timeout=60)
        warm = server.rss_mb()
        sent = 0
        while sent < n:
            sent += wrk(server.url + w.path, body, w.ctype, 32, 5)["requests"]
        return {"rss_warm_mb": warm, "rss_after_mb": server.rss_mb(), "requests": sent}
    finally:
        server.stop()
        shutil.rmtree(body.parent, ignore_errors=True)


def workloads(only: str | None) -> list[Workload]:
    from skimage import data

    from bench.resnet50 import make_resnet50_repo
    from training.data import load_digits_splits

    png = io.BytesIO()
    Image.fromarray(load_digits_splits().test.images[0]).resize((64, 64)).save(png, format="PNG")
    lenet = ROOT / "models" / "lenet5_digits"
    out = []
    if only in (None, "lenet5"):
        out.append(
            classify_workload(
                "LeNet-5 (64x64 PNG)", lenet, png.getvalue(), "image/png", CLASSIFY_KINDS, (1, 8, 32, 128)
            )
        )
        out.append(v2_workload(lenet, png.getvalue()))
    if only in (None, "resnet50"):
        jpg = io.BytesIO()
        Image.fromarray(data.astronaut()).resize((224, 224)).save(jpg, format="JPEG", quality=90)
        mdir = make_resnet50_repo(Path(tempfile.mkdtemp(prefix="bench-r50-")))
        out.append(
            classify_workload(
                "ResNet-50 (224x224 JPEG)",
                mdir,
                jpg.getvalue(),
                "image/jpeg",
                (*CLASSIFY_KINDS, "preferred"),
                (1, 8, 32),
            )
        )
    if only in (None, "tasks"):
        out += task_workloads(ROOT / "models")
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=5, help="wrk duration per point")
    p.add_argument("--only", choices=["lenet5", "resnet50", "tasks", "lifecycle"])
    args = p.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is needed: apt-get install -y wrk", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    ws = [] if args.only == "lifecycle" else workloads(args.only)
    results = {"workloads": {w.label: bench_workload(w, args.seconds, 2 if "LeNet" in w.label else 4) for w in ws}}
    if args.only in (None, "lifecycle"):
        print("[lifecycle] cold start and memory ...", flush=True)
        lenet = workloads("lenet5")[0]
        results["cold_start"] = cold_start(ROOT / "models")
        results["memory"] = memory(ROOT / "models", lenet)
    results["wall_s"] = time.perf_counter() - t0
    report(results, CONCURRENCY, ROOT / "bench" / "results")
    return 0


if __name__ == "__main__":
    sys.exit(main())
