"""The GPU check (``bench/gpu.sh`` on a lent GPU machine; see ../shared/GPU.md): raw ONNX Runtime CUDA
against PyTorch eager, per model and batch size, ms per batch (median).

Rows per model: ORT with numpy in/out, ORT with IO binding (input copied once to a device buffer,
output left on the device), the service's own runner (``service/runner.py``: IO binding, output copied
back, power-of-two batch buckets), ORT fp16 (ResNet-50: the network in half precision behind float32 casts,
so callers still send float32) and torch eager fp32 / fp16 channels-last. Runs on a CPU machine too
(CPU execution provider, torch on CPU, no fp16) so the script itself is tested here; its GPU figures
exist only once it has run on a GPU. Prints one table last.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training.nets import build  # noqa: E402


class Half(torch.nn.Module):
    """float32 in, float32 out, half precision inside."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net.half()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.half()).float()


def _time(fn, reps: int) -> float:
    fn()
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def _export(net: torch.nn.Module, x: torch.Tensor, path: Path) -> Path:
    torch.onnx.export(
        net, x, str(path), input_names=["input"], output_names=["output"], opset_version=17,
        dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, dynamo=False,
    )  # fmt: skip
    return path


def ort_rows(path: Path, x: np.ndarray, cuda: bool, reps: int) -> dict[str, float]:
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"]
    sess = ort.InferenceSession(str(path), providers=providers)
    dev = "cuda" if "CUDAExecutionProvider" in sess.get_providers() else "cpu"
    rows = {f"ort {dev} numpy": _time(lambda: sess.run(None, {"input": x}), reps)}
    binding = sess.io_binding()
    x_dev = ort.OrtValue.ortvalue_from_numpy(x, dev, 0)
    binding.bind_ortvalue_input("input", x_dev)
    binding.bind_output("output", dev)

    def bound() -> None:
        x_dev.update_inplace(x)  # the request's copy host -> device
        sess.run_with_iobinding(binding)
        binding.synchronize_outputs()

    rows[f"ort {dev} io-binding"] = _time(bound, reps)
    # what the service runs per batch (service/runner.py): IO binding with its kept input buffer, the
    # output copied back to the host, the batch padded to a power-of-two bucket
    from service.runner import SessionRunner, bucket_sizes

    runner = SessionRunner(sess, "input", io_binding=True, buckets=bucket_sizes(64, "pow2"))
    rows[f"convserve runner {dev}"] = _time(lambda: runner(x), reps)
    return rows


def torch_rows(net: torch.nn.Module, x: np.ndarray, cuda: bool, reps: int) -> dict[str, float]:
    dev = torch.device("cuda" if cuda else "cpu")
    net = net.to(dev).eval()
    xt = torch.from_numpy(x).to(dev)

    def run(m, t) -> None:
        with torch.inference_mode():
            m(t)
        if cuda:
            torch.cuda.synchronize()

    rows = {f"torch {dev.type} fp32": _time(lambda: run(net, xt), reps)}
    if cuda:
        half = net.half().to(memory_format=torch.channels_last)
        xh = xt.half().to(memory_format=torch.channels_last)
        rows["torch cuda fp16 channels-last"] = _time(lambda: run(half, xh), reps)
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--batches", default="1,8,64")
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--cpu", action="store_true", help="force the CPU (a smoke test of the script)")
    args = p.parse_args()
    cuda = torch.cuda.is_available() and not args.cpu
    print("onnxruntime", ort.__version__, ort.get_available_providers(), "| torch", torch.__version__, "cuda", cuda)
    models = {
        "resnet50 224": (lambda: build("resnet50", preset="imagenet"), (3, 224, 224)),
        "lenet5 32": (lambda: build("lenet5", preset="small", num_classes=10, in_channels=1), (1, 32, 32)),
    }
    table: list[tuple[str, int, str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (make, shape) in models.items():
            torch.manual_seed(0)
            net = make().eval()
            path = _export(net, torch.zeros(1, *shape), Path(tmp) / f"{name.split()[0]}.onnx")
            half_path = None
            if cuda and name.startswith("resnet50"):
                half = Half(make().eval()).cuda()
                half_path = _export(half, torch.zeros(1, *shape, device="cuda"), Path(tmp) / "resnet50_fp16.onnx")
            for b in (int(v) for v in args.batches.split(",")):
                x = np.random.default_rng(0).standard_normal((b, *shape)).astype(np.float32)
                rows = ort_rows(path, x, cuda, args.reps) | torch_rows(make().eval(), x, cuda, args.reps)
                if half_path is not None:
                    rows |= {
                        k.replace("ort cuda", "ort cuda fp16"): v
                        for k, v in ort_rows(half_path, x, cuda, args.reps).items()
                    }
                table += [(name, b, k, v) for k, v in rows.items()]
                print(f"{name} b{b}: " + ", ".join(f"{k} {v:.2f} ms" for k, v in rows.items()), flush=True)
    print(f"\n{'model':14s} {'batch':>5s} {'path':32s} {'ms/batch':>9s} {'items/s':>9s}")
    for name, b, k, v in table:
        print(f"{name:14s} {b:5d} {k:32s} {v:9.2f} {1e3 * b / v:9.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
