"""The model registry: scans the repository, opens one ONNX Runtime session per model, warms it up.

A model whose card or sha256 is wrong is *unavailable* with a reason; the others still serve.
The execution providers a session actually uses are read back with ``get_providers()``: with
``auto`` a fall-back from CUDA to the CPU is logged as a warning and shown in ``/models`` and
``/health/ready``; an explicitly requested provider that does not come up fails start-up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field, replace

import numpy as np
import onnxruntime as ort

from modelrepo.card import ModelCard, ranking_key
from modelrepo.model_config import ModelConfig
from modelrepo.repository import ModelEntry, scan_repository
from service.batch_tune import preferred_size, seconds_per_row, trim_heap
from service.batcher import Batcher, DynamicBatcher
from service.metrics import ServiceMetrics
from service.runner import SessionRunner, bucket_sizes, on_gpu
from service.settings import Settings

log = logging.getLogger("convserve.registry")

ORT_NAMES = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider", "cpu": "CPUExecutionProvider"}


class ProviderUnavailableError(RuntimeError):
    """An explicitly requested execution provider could not be used: start-up must fail."""


def requested_providers(settings: Settings) -> list[str]:
    if settings.providers == ["auto"]:
        available = ort.get_available_providers()
        return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    return [ORT_NAMES[p] for p in settings.providers]


def nvidia_driver_present() -> bool:
    """Whether this host has an NVIDIA driver (its ``libcuda.so.1``): without one, asking ONNX Runtime
    for CUDA only prints a loader error before it falls back to the CPU."""
    import ctypes

    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def cuda_wheels_installed() -> bool:
    """Whether the [gpu] extra's CUDA runtime wheels (nvidia-*) are in this environment."""
    import importlib.util

    try:
        return hasattr(ort, "preload_dlls") and importlib.util.find_spec("nvidia.cuda_runtime") is not None
    except ModuleNotFoundError:
        return False


def session_options(settings: Settings) -> ort.SessionOptions:
    """Full graph optimisation; intra-op threads and thread spinning as set. Spinning (ORT's default)
    measured 850 vs 390 req/s for LeNet-5 at one client here; turn it off when the HTTP work needs
    the cores that idle spinning threads burn."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if settings.intra_op_threads:
        opts.intra_op_num_threads = settings.intra_op_threads
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if settings.ort_spinning else "0")
    return opts


def provider_options(settings: Settings, providers: list[str]) -> list[str | tuple[str, dict[str, str]]]:
    """The providers with their options: CUDA gets the cuDNN convolution algorithm search setting."""
    return [
        (p, {"cudnn_conv_algo_search": settings.cudnn_conv_algo_search}) if p == "CUDAExecutionProvider" else p
        for p in providers
    ]


@dataclass
class ModelState:
    name: str
    card: ModelCard | None
    version: int | None = None
    status: str = "loading"  # loading | warming | ready | unavailable
    reason: str | None = None
    providers: list[str] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)
    fallback: str | None = None  # why the model runs on a provider other than the first requested
    session: ort.InferenceSession | None = None
    batcher: Batcher | None = None
    config: ModelConfig | None = None  # its config.pbtxt
    warmup_ms: float | None = None
    io_binding: bool = False
    batch_buckets: list[int] = field(default_factory=list)
    batch_tuning: dict[int, float] | None = None  # ms per row at each batch size, timed after readiness

    @property
    def ready(self) -> bool:
        return self.status == "ready"

    @property
    def provider(self) -> str | None:
        return self.providers[0] if self.providers else None

    def summary(self) -> dict:
        card = self.card
        return {
            "name": self.name,
            "version": self.version,
            "task": card.task if card else None,
            "status": self.status,
            "ready": self.ready,
            "reason": self.reason,
            "provider": self.provider,
            "providers": self.providers,
            "requested_providers": self.requested,
            "fallback": self.fallback,
            "warmup_ms": self.warmup_ms,
            "max_batch_size": self.batcher.max_batch_size if self.batcher is not None else None,
            "preferred_batch_sizes": list(getattr(self.batcher, "preferred", ())),
            "io_binding": self.io_binding,
            "batch_buckets": self.batch_buckets,
            "batch_tuning_ms_per_row": self.batch_tuning,
            "architecture": card.architecture.name if card else None,
            "metrics": card.metrics if card else None,
        }


class RegistryBase:
    """What routes need of a registry: the model states, readiness and the default per task."""

    def __init__(self) -> None:
        self.models: dict[str, ModelState] = {}  # name -> the latest served version
        self.versions: dict[str, dict[int, ModelState]] = {}  # name -> every served version
        self.loaded = False

    def all_states(self) -> list[ModelState]:
        """Every served version of every model, and the models that could not be loaded at all."""
        return [s for name, latest in self.models.items() for s in (self.versions.get(name) or {0: latest}).values()]

    def served_versions(self, name: str) -> list[int]:
        return sorted(self.versions.get(name, {}))

    def get(self, name: str, version: int | None = None) -> ModelState | None:
        """A model at ``version`` (None: its latest served version), or None when there is no such."""
        return self.models.get(name) if version is None else self.versions.get(name, {}).get(version)

    @property
    def ready(self) -> bool:
        raise NotImplementedError

    async def start(self, warmup: bool = True) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError

    def default_model(self, task: str, channels: int | None = None) -> ModelState | None:
        """The ready model of ``task`` that scores best on its card's headline metric (classifiers:
        ``robust_accuracy``, the worst variant of the robustness suite); ties: the smaller network.
        A card without the metric ranks below every card with it. ``channels``: prefer the models
        whose input has that many (a colour denoiser for a colour image), else any of the task."""
        candidates = [s for s in self.models.values() if s.ready and s.card and s.card.task == task]
        if channels is not None:
            candidates = [s for s in candidates if s.card.input.channels == channels] or candidates
        if not candidates:
            return None
        return max(candidates, key=lambda s: ranking_key(s.card))


class ModelRegistry(RegistryBase):
    """Sessions and batchers in this process (single-process mode, and inside the engine)."""

    def __init__(self, settings: Settings, metrics: ServiceMetrics) -> None:
        super().__init__()
        self.settings = settings
        self.metrics = metrics
        self.warmed = False
        self._no_driver = False
        self._effective: list[str] = []
        self._warm_task: asyncio.Task | None = None
        self._closing = False

    async def start(self, warmup: bool = True) -> None:
        """Load synchronously (so a missing explicit provider fails start-up), warm up in the background."""
        self.load()
        if warmup:
            self._warm_task = asyncio.create_task(asyncio.to_thread(self.warmup))

    def load(self) -> None:
        """Scan, validate and open every served version of every model (raises
        ProviderUnavailableError on an explicit miss)."""
        requested = requested_providers(self.settings)
        self._no_driver = (
            self.settings.providers == ["auto"] and "CUDAExecutionProvider" in requested and not nvidia_driver_present()
        )
        if "CUDAExecutionProvider" in requested and not self._no_driver and cuda_wheels_installed():
            ort.preload_dlls()  # CUDA / cuDNN from the nvidia-* wheels of the [gpu] extra
        self._effective = requested  # after one CUDA failure under auto, the rest skip straight to what works
        if self._no_driver:
            self._effective = [p for p in requested if p != "CUDAExecutionProvider"]
            log.info(
                "no NVIDIA driver on this host (libcuda.so.1): CUDA not tried, models run on %s", self._effective[0]
            )
        for entry in scan_repository(self.settings.models_dir):
            self._load_entry(entry, requested)
        self.loaded = True

    def _instance_providers(self, config: ModelConfig | None, providers: list[str]) -> list[str]:
        """config.pbtxt's ``instance_group { kind: KIND_CPU }`` pins a model to the CPU under ``auto``
        (an explicit CONVSERVE_PROVIDERS wins: settings override the repository)."""
        if self.settings.providers == ["auto"] and config is not None and config.instance_kind == "KIND_CPU":
            return ["CPUExecutionProvider"]
        return providers

    def _load_entry(self, entry: ModelEntry, requested: list[str]) -> None:
        """One model folder: a state per served version; ``models[name]`` is the latest of them."""
        requested = self._instance_providers(entry.config, requested)
        base = ModelState(entry.name, entry.card, requested=requested, config=entry.config)
        self.models[entry.name], self.versions[entry.name] = base, {}
        if not entry.ok:
            base.status, base.reason = "unavailable", "; ".join(entry.problems)
            log.warning("model %s is unavailable: %s", entry.name, base.reason)
            return
        for version in entry.served_versions:
            state = replace(base, version=version, providers=[])
            self.versions[entry.name][version] = self.models[entry.name] = state
            self._open_version(state, str(entry.version_path(version)))

    def _open_version(self, state: ModelState, path: str) -> None:
        effective = self._instance_providers(state.config, self._effective)
        try:
            state.session = self._open(path, effective)
        except ProviderUnavailableError:
            raise
        except Exception as exc:  # a broken ONNX file: this version only
            state.status, state.reason = "unavailable", f"ONNX Runtime could not load it: {exc}"
            log.warning("model %s v%s is unavailable: %s", state.name, state.version, state.reason)
            return
        self._check_providers(state, state.session.get_providers())
        if state.fallback and effective == self._effective:
            self._effective = state.providers  # one ORT error at start-up, not one per model
        state.status = "warming"
        state.batcher = self._batcher(state)

    def _open(self, path: str, requested: list[str]) -> ort.InferenceSession:
        providers = provider_options(self.settings, requested)
        return ort.InferenceSession(path, sess_options=session_options(self.settings), providers=providers)

    def _check_providers(self, state: ModelState, actual: list[str]) -> None:
        state.providers = list(actual)
        wanted = state.requested[0] if state.requested else "CPUExecutionProvider"
        if actual and actual[0] == wanted:
            return
        if self.settings.providers != ["auto"]:
            raise ProviderUnavailableError(
                f"model {state.name}: execution provider {wanted} was requested (CONVSERVE_PROVIDERS="
                f"{','.join(self.settings.providers)}) but ONNX Runtime runs it on {actual}. Install the CUDA 13 / "
                "cuDNN 9 runtime for onnxruntime-gpu, or set CONVSERVE_PROVIDERS=auto or cpu."
            )
        if self._no_driver:
            state.fallback = f"no NVIDIA driver on this host: {wanted} not tried; running on {actual[0]}"
            return  # said once at start-up
        state.fallback = f"{wanted} could not be initialised; running on {actual[0]}"
        log.warning("model %s: %s", state.name, state.fallback)

    def _batcher(self, state: ModelState) -> DynamicBatcher:
        sess = state.session
        assert sess is not None and state.card is not None
        s, cfg = self.settings, state.config
        max_batch = s.batch_size_for(state.name, cfg.max_batch_size if cfg else None)
        gpu = on_gpu(sess)
        io_binding = s.io_binding == "on" or (s.io_binding == "auto" and gpu)
        buckets = s.batch_buckets if s.batch_buckets != "auto" else ("pow2" if gpu else "none")
        state.io_binding, state.batch_buckets = io_binding, bucket_sizes(max_batch, buckets)
        run = SessionRunner(sess, state.card.input.name, io_binding, state.batch_buckets)
        return DynamicBatcher(
            state.name,
            run,
            max_batch,
            s.queue_delay_for(state.name, cfg.max_queue_delay_ms if cfg else None),
            s.max_queue_length,
            observer=self.metrics.batch_observer(state.name, str(state.version)),
            preferred=cfg.preferred_batch_sizes if cfg else (),
        )

    def warmup(self) -> None:
        """Run each model with its card's input shape (batch 1 and 8, or every batch bucket); a model
        becomes ready only after this."""
        for state in self.all_states():
            if state.status != "warming":
                continue
            assert state.card is not None and state.batcher is not None
            spec = state.card.input
            h = spec.height if isinstance(spec.height, int) else 64
            w = spec.width if isinstance(spec.width, int) else 64
            t0 = time.perf_counter()
            try:
                # every batch bucket once (a GPU's per-shape algorithm search then happens here, not on a request)
                for n in state.batch_buckets or sorted({1, min(8, state.batcher.max_batch_size)}):
                    state.batcher.run_chunked(np.zeros((n, spec.tensor_channels, h, w), np.float32))
            except Exception as exc:
                state.status, state.reason = "unavailable", f"warm-up failed: {exc}"
                log.warning("model %s is unavailable: %s", state.name, state.reason)
                continue
            state.warmup_ms = round(1000 * (time.perf_counter() - t0), 2)
            state.status = "ready"
            self.metrics.model_ready.labels(state.name, str(state.version), state.provider).set(1)
            log.info(
                "model %s v%s ready on %s (warm-up %.1f ms)", state.name, state.version, state.provider, state.warmup_ms
            )
        self.warmed = True
        for state in self.all_states():  # after readiness, so start-up time stays what it was
            if self._closing:
                break
            if state.ready:
                self._tune(state)
        trim_heap()

    def _tune(self, state: ModelState) -> None:
        """``service.batch_tune``: a fixed-shape model with no preferred batch size of its own prefers the
        smallest batch that is as fast per row as any larger one. Runs once every model is ready (requests
        are served meanwhile; ORT sessions take concurrent runs)."""
        batcher, spec = state.batcher, state.card.input
        fixed = isinstance(spec.height, int) and isinstance(spec.width, int)
        if self.settings.batch_tune == "off" or not fixed or not isinstance(batcher, DynamicBatcher):
            return
        if batcher.preferred or batcher.max_batch_size < 2:
            return
        shape = (spec.tensor_channels, spec.height, spec.width)
        sess = state.session
        assert sess is not None

        def run(x: np.ndarray) -> None:  # the session itself: its runs are thread-safe, the runner's buffers not
            sess.run(None, {spec.name: x})

        per_row = seconds_per_row(run, lambda n: np.zeros((n, *shape), np.float32), batcher.max_batch_size)
        # the sweep's largest batches grew ONNX Runtime's memory arena (~100 MiB over the committed classifiers);
        # a last small run hands back what is not in use
        shrink = ort.RunOptions()
        shrink.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        try:
            sess.run(None, {spec.name: np.zeros((1, *shape), np.float32)}, shrink)
        except Exception as exc:  # housekeeping: never a reason to lose the tuning or the model
            log.warning("model %s: could not shrink the memory arena after batch tuning: %s", state.name, exc)
        state.batch_tuning = {n: round(1000 * v, 4) for n, v in per_row.items()}
        chosen = preferred_size(per_row, batcher.max_batch_size)
        if chosen is not None:
            batcher.preferred = (chosen,)
            log.info("model %s: batch %d is as fast per row as any larger one; preferred", state.name, chosen)

    @property
    def ready(self) -> bool:
        """True when every loadable model is warmed (unavailable ones do not hold readiness back)."""
        return self.loaded and self.warmed and all(s.status in ("ready", "unavailable") for s in self.all_states())

    async def aclose(self) -> None:
        self._closing = True  # batch tuning stops after the model it is timing
        if self._warm_task is not None:
            await self._warm_task
        for state in self.all_states():
            if state.batcher is not None:
                await state.batcher.aclose()
