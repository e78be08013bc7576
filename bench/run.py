"""``make bench``: raw ONNX Runtime throughput vs end-to-end /classify over HTTP, measured side by side.

For a light model (the committed LeNet-5) and a compute-bound one (ResNet-50, imagenet preset,
random weights, 224x224 JPEGs): raw ORT images/s at several batch sizes, then `wrk` (a separate
process) against three servers on 127.0.0.1 - ConvServe with dynamic batching, ConvServe with
batching off (max batch 1), and a plain FastAPI endpoint running the same session per request -
at 1, 8 and 32 concurrent clients. Prints a table and the ratios the service-core issue targets;
writes bench/results/<stamp>.json and a PNG plot. Numbers from one run on one machine only.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modelrepo.preprocess import preprocess  # noqa: E402
from modelrepo.repository import check_model_dir  # noqa: E402
from service.launch import ServerProcess, free_port  # noqa: E402
from service.registry import session_options  # noqa: E402
from service.settings import Settings  # noqa: E402

CONCURRENCY = (1, 8, 32)


def make_resnet50_repo(root: Path) -> Path:
    """Export ResNet-50 (imagenet preset, random weights, seed 0) with an ImageNet-style card."""
    import torch

    from modelrepo.card import Architecture, DataProvenance, InputSpec, OutputSpec
    from training.export import export_to_repository
    from training.nets import build

    torch.manual_seed(0)
    model = build("resnet50", preset="imagenet").eval()
    spec = InputSpec(
        color_mode="RGB",
        channels=3,
        height=224,
        width=224,
        mean=[0.485, 0.456, 0.406],
        std=[0.229, 0.224, 0.225],
        resize="shorter_side_center_crop",
    )
    fields = dict(
        name="resnet50_random",
        task="classification",
        description="ResNet-50 with random weights (benchmark only)",
        architecture=Architecture(
            name="resnet50",
            family="resnet",
            preset="imagenet",
            num_parameters=sum(p.numel() for p in model.parameters()),
        ),
        input=spec,
        output=OutputSpec(kind="logits", shape=[1000], postprocess="softmax"),
        labels=[f"class_{i}" for i in range(1000)],
        training=DataProvenance(source="none (random weights)", split={}, sizes={}, seed=0),
        metrics={"accuracy": 0.001},
    )
    real = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    export_to_repository(model, fields, root, real, max_batch_size=32)
    return root / "resnet50_random"


def raw_throughput(model_dir: Path, image: bytes, batches: tuple[int, ...], budget_s: float) -> dict[int, float]:
    """Images/s of one ORT session on preprocessed inputs, per batch size (same session options as the service)."""
    entry = check_model_dir(model_dir)
    sess = ort.InferenceSession(
        str(entry.version_path()), session_options(Settings()), providers=["CPUExecutionProvider"]
    )
    x1 = preprocess([Image.open(io.BytesIO(image))], entry.card.input)
    out = {}
    for b in batches:
        x = np.repeat(x1, b, axis=0)
        sess.run(None, {"input": x})  # warm
        n, t0 = 0, time.perf_counter()
        while (el := time.perf_counter() - t0) < budget_s or n < 2:
            sess.run(None, {"input": x})
            n += 1
        out[b] = n * b / el
    return out


class Server:
    def __init__(self, kind: str, model_dir: Path, repo: Path) -> None:
        self.port = free_port()
        env = {"PYTHONPATH": str(ROOT)}
        if kind == "plain":
            cmd = [sys.executable, str(ROOT / "bench" / "plain_server.py"), str(model_dir), str(self.port)]
        else:
            cmd = [sys.executable, "-m", "service", "--models", str(repo), "--port", str(self.port)]
            env |= {"CONVSERVE_LOG_LEVEL": "warning", "CONVSERVE_MAX_QUEUE_LENGTH": "1024"}
            if kind == "nobatch":
                env |= {"CONVSERVE_MAX_BATCH_SIZE": "1", "CONVSERVE_MAX_QUEUE_DELAY_MS": "0"}
        self.server = ServerProcess(cmd, self.port, ROOT, env)
        self.url = self.server.url

    def stop(self) -> None:
        self.server.stop(timeout_s=10)


def _ms(s: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)$", s)
    if m is None:
        raise ValueError(f"cannot read wrk's latency {s!r}")
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[m.group(2)]


def wrk(url: str, body: Path, ctype: str, clients: int, seconds: float) -> dict:
    env = os.environ | {"BENCH_BODY": str(body), "BENCH_CTYPE": ctype}
    cmd = [
        "wrk",
        "-t1",
        f"-c{clients}",
        f"-d{seconds}s",
        "--timeout",
        "30s",
        "--latency",
        "-s",
        str(ROOT / "bench" / "post.lua"),
        f"{url}/classify",
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    if "Latency Distribution" not in out:  # e.g. no request completed
        raise RuntimeError(f"wrk gave no latency distribution:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    dist = out[out.index("Latency Distribution") :]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", dist, re.M).group(1))
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", dist, re.M).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "non_2xx": int(bad.group(1)) if bad else 0}


def bench_model(label: str, model_dir: Path, image: bytes, ctype: str, seconds: float, raw_batches, raw_s) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"bench-{label}-"))
    repo = work / "repo"
    shutil.copytree(model_dir, repo / model_dir.name)
    body = work / ("img.jpg" if ctype == "image/jpeg" else "img.png")
    body.write_bytes(image)
    print(f"[{label}] raw ONNX Runtime ...", flush=True)
    raw = raw_throughput(model_dir, image, raw_batches, raw_s)
    result = {"raw_images_per_s": raw, "http": {}}
    for kind in ("convserve", "nobatch", "plain"):
        server = Server(kind, repo / model_dir.name, repo)
        try:
            for _ in range(3):  # warm: first requests pay for lazy initialisation
                r = httpx.post(f"{server.url}/classify", content=image, headers={"content-type": ctype}, timeout=120)
                r.raise_for_status()
            for c in CONCURRENCY:
                print(f"[{label}] {kind:9s} {c:2d} clients ...", flush=True)
                result["http"].setdefault(kind, {})[c] = wrk(server.url, body, ctype, c, seconds)
        finally:
            server.stop()
    shutil.rmtree(work, ignore_errors=True)
    return result


def report(results: dict, out_dir: Path) -> None:
    lines = []
    for label, r in results.items():
        best = max(r["raw_images_per_s"].values())
        raw = ", ".join(f"b{b}: {v:.1f}" for b, v in r["raw_images_per_s"].items())
        lines.append(f"\n{label}: raw ONNX Runtime images/s ({raw}); best {best:.1f}")
        lines.append(
            f"{'server':10s} " + " ".join(f"{'c=' + str(c) + ' req/s':>12s} {'p50 ms':>8s}" for c in CONCURRENCY)
        )
        for kind, per_c in r["http"].items():
            lines.append(
                f"{kind:10s} " + " ".join(f"{per_c[c]['rps']:12.1f} {per_c[c]['p50_ms']:8.2f}" for c in CONCURRENCY)
            )
        h = r["http"]
        for c in (8, 32):
            lines.append(f"  convserve / raw best at {c:2d} clients: {h['convserve'][c]['rps'] / best:.2f}")
        lines.append(f"  convserve / plain at 32 clients: {h['convserve'][32]['rps'] / h['plain'][32]['rps']:.2f}")
        lines.append(f"  convserve / nobatch at 32 clients: {h['convserve'][32]['rps'] / h['nobatch'][32]['rps']:.2f}")
        lines.append(
            f"  p50 at 1 client, convserve vs plain: {h['convserve'][1]['p50_ms']:.2f} vs "
            f"{h['plain'][1]['p50_ms']:.2f} ms"
        )
        errors = sum(v["non_2xx"] for per_c in h.values() for v in per_c.values())
        lines.append(f"  non-2xx responses in all runs: {errors}")
    text = "\n".join(lines)
    print(text)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stamp}.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / f"{stamp}.txt").write_text(text + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4))
        for ax, (label, r) in zip(np.atleast_1d(axes), results.items()):
            for kind, per_c in r["http"].items():
                ax.plot(CONCURRENCY, [per_c[c]["rps"] for c in CONCURRENCY], marker="o", label=kind)
            ax.axhline(max(r["raw_images_per_s"].values()), color="grey", ls="--", label="raw ORT best batch")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("concurrent clients")
            ax.set_ylabel("requests/s")
            ax.set_title(label)
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out_dir / f"{stamp}.png", dpi=100)
        print(f"\nwritten: {out_dir / stamp}.json/.txt/.png")
    except ImportError:
        pass


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=5, help="wrk duration per point")
    p.add_argument("--only", choices=["lenet5", "resnet50"])
    args = p.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is needed: apt-get install -y wrk", file=sys.stderr)
        return 2
    from training.data import load_digits_splits

    digit = load_digits_splits().test.images[0]
    buf = io.BytesIO()
    Image.fromarray(digit).resize((64, 64)).save(buf, format="PNG")
    results = {}
    if args.only in (None, "lenet5"):
        results["LeNet-5 (64x64 PNG)"] = bench_model(
            "lenet5", ROOT / "models" / "lenet5_digits", buf.getvalue(), "image/png", args.seconds, (1, 8, 32, 128), 2
        )
    if args.only in (None, "resnet50"):
        from skimage import data

        jpg = io.BytesIO()
        Image.fromarray(data.astronaut()).resize((224, 224)).save(jpg, format="JPEG", quality=90)
        with tempfile.TemporaryDirectory() as tmp:
            mdir = make_resnet50_repo(Path(tmp))
            results["ResNet-50 (224x224 JPEG)"] = bench_model(
                "resnet50", mdir, jpg.getvalue(), "image/jpeg", args.seconds, (1, 8, 32), 6
            )
    report(results, ROOT / "bench" / "results")
    return 0


if __name__ == "__main__":
    sys.exit(main())
