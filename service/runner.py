"""How a batch reaches ONNX Runtime: ``session.run`` with numpy arrays, or IO binding, optionally with
the batch padded up to a fixed set of sizes.

- **IO binding** (``CONVSERVE_IO_BINDING``): the input is copied into a buffer pre-allocated on the
  session's device (one per input shape, kept for the next batch of that shape) and the output is
  allocated by ONNX Runtime on the device and copied back once. On CUDA this replaces numpy I/O's
  per-call staging; on the CPU there is no device copy to save, so ``auto`` binds only on CUDA/TensorRT.
- **Batch-size buckets** (``CONVSERVE_BATCH_BUCKETS``): a batch of n rows runs as the smallest bucket
  >= n (zero rows appended, their outputs dropped), so a model sees a few shapes over and over - what
  cuDNN's algorithm search (``CONVSERVE_CUDNN_CONV_ALGO_SEARCH``, once per shape) needs to pay off. On
  the CPU padding is wasted arithmetic, so ``auto`` uses buckets only on CUDA/TensorRT.

Rows are independent in every served network (batch norm is folded or in inference mode), so padding
never changes a real row's output; the tests check that, and IO binding against ``session.run``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
import onnxruntime as ort

DEVICE_OF = {"CUDAExecutionProvider": "cuda", "TensorrtExecutionProvider": "cuda"}
MAX_BUFFERS = 8  # input shapes whose device buffer is kept (least recently used is dropped)


def bucket_sizes(max_batch_size: int, mode: str) -> list[int]:
    """``pow2``: 1, 2, 4, ... up to and including ``max_batch_size``; ``none``: no buckets."""
    if mode == "none":
        return []
    if mode != "pow2":
        raise ValueError(f"unknown batch bucket mode {mode!r} (none | pow2)")
    sizes, b = [], 1
    while b < max_batch_size:
        sizes.append(b)
        b *= 2
    return sizes + [max_batch_size]


def on_gpu(session: ort.InferenceSession) -> bool:
    return session.get_providers()[0] in DEVICE_OF


class SessionRunner:
    """``runner(x)`` -> the session's first output for the float32 batch ``x`` (N, ...)."""

    def __init__(
        self, session: ort.InferenceSession, input_name: str, io_binding: bool, buckets: list[int] | None = None
    ) -> None:
        self.session, self.input_name = session, input_name
        self.output_name = session.get_outputs()[0].name
        self.io_binding, self.buckets = io_binding, sorted(buckets or [])
        self.device = DEVICE_OF.get(session.get_providers()[0], "cpu")
        self._buffers: OrderedDict[tuple[int, ...], ort.OrtValue] = OrderedDict()
        self._binding = session.io_binding() if io_binding else None
        self._lock = threading.Lock()  # one binding and one set of buffers: one batch at a time

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n = len(x)
        size = next((b for b in self.buckets if b >= n), n)
        if size > n:
            x = np.concatenate([x, np.zeros((size - n, *x.shape[1:]), x.dtype)])
        out = self._bound(x) if self.io_binding else self.session.run([self.output_name], {self.input_name: x})[0]
        return out[:n] if size > n else out

    def _bound(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        with self._lock:
            buf = self._buffers.pop(x.shape, None)
            if buf is None:
                buf = ort.OrtValue.ortvalue_from_shape_and_type(x.shape, np.float32, self.device, 0)
            self._buffers[x.shape] = buf
            while len(self._buffers) > MAX_BUFFERS:
                self._buffers.popitem(last=False)
            buf.update_inplace(x)  # host -> the pre-allocated device buffer
            assert self._binding is not None
            self._binding.bind_ortvalue_input(self.input_name, buf)
            self._binding.bind_output(self.output_name, self.device)
            self.session.run_with_iobinding(self._binding)
            return self._binding.copy_outputs_to_cpu()[0]
