"""All service settings in one pydantic-settings class (environment prefix ``CONVSERVE_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from modelrepo.denoising import OVERLAP as DENOISE_OVERLAP
from modelrepo.denoising import TILE as DENOISE_TILE

Provider = Literal["auto", "cuda", "tensorrt", "cpu"]


class Settings(BaseSettings):
    """Environment variables override defaults: ``CONVSERVE_MODELS_DIR=/models``,
    ``CONVSERVE_PROVIDERS=cuda,cpu``, ``CONVSERVE_MAX_BATCH_SIZE=32``, ``CONVSERVE_BATCH_SIZES='{"resnet50": 64}'``."""

    model_config = SettingsConfigDict(env_prefix="CONVSERVE_", extra="forbid")

    models_dir: Path = Path("models")
    examples_dir: Path | None = Field(
        None, description="sample inputs the web page offers (default: the repository's examples/, when present)"
    )
    providers: Annotated[list[Provider], NoDecode] = Field(
        default_factory=lambda: ["auto"],
        description="ordered execution providers: auto (CUDA if it works, else CPU, with a warning) "
        "| cuda | tensorrt | cpu",
    )
    intra_op_threads: int = Field(0, ge=0, le=256, description="ONNX Runtime intra-op threads; 0 lets ORT decide")
    ort_spinning: bool = Field(
        True, description="let ONNX Runtime's idle intra-op threads spin (ORT's default; faster for small models)"
    )
    io_binding: Literal["auto", "on", "off"] = Field(
        "auto", description="ONNX Runtime IO binding with pre-allocated device input buffers (auto: on CUDA only)"
    )
    batch_tune: Literal["auto", "off"] = Field(
        "auto",
        description="at warm-up, time each fixed-shape model at batch 1, 2, 4, ... and prefer the smallest batch "
        "as fast per row as any larger one (a config.pbtxt preferred_batch_size wins)",
    )
    batch_buckets: Literal["auto", "pow2", "none"] = Field(
        "auto", description="pad each batch up to a power of two, so a GPU sees few shapes (auto: pow2 on CUDA only)"
    )
    cudnn_conv_algo_search: Literal["EXHAUSTIVE", "HEURISTIC", "DEFAULT"] = Field(
        "EXHAUSTIVE", description="CUDA: how cuDNN picks a convolution algorithm per shape (ORT's default: EXHAUSTIVE)"
    )
    max_batch_size: int = Field(32, ge=1, le=1024, description="default per-model dynamic batch limit")
    max_queue_delay_ms: float = Field(2.0, ge=0, le=1000, description="extra wait to fill a batch, only under load")
    batch_sizes: dict[str, int] = Field(default_factory=dict, description="per-model max batch size")
    queue_delays_ms: dict[str, float] = Field(default_factory=dict, description="per-model max queue delay")
    max_queue_length: int = Field(256, ge=1, le=100_000, description="queued images per model before 503")
    request_timeout_s: float = Field(30.0, gt=0, le=3600)
    max_body_bytes: int = Field(20 * 1024 * 1024, ge=1024, le=2 * 1024**3)
    shutdown_timeout_s: float = Field(
        25.0, gt=0, le=3600, description="on SIGTERM, how long requests in flight may take to finish"
    )
    body_timeout_s: float = Field(
        10.0, gt=0, le=600, description="a request body that stops arriving for this long gets a 408"
    )
    body_deadline_s: float = Field(
        120.0, gt=0, le=3600, description="a request body not complete this long after it began gets a 408 (slow-loris)"
    )
    max_image_pixels: int = Field(40_000_000, ge=64, le=1_000_000_000)
    max_images_per_request: int = Field(64, ge=1, le=4096)
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="origins allowed to call from a browser (comma-separated); none by default"
    )
    api_key: str | None = Field(None, min_length=8, description="if set, every route but health needs X-API-Key")
    health_open: bool = Field(True, description="with API_KEY set: /health/* (and /v2/health/*) need no key")
    metrics_open: bool = Field(False, description="with API_KEY set: /metrics needs no key (scrapers without auth)")
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    default_classifier: str | None = Field(
        None, description="default model for /classify; else the best by its card's headline metric (robust_accuracy)"
    )
    segment_tile_size: int = Field(512, ge=32, le=8192, description="larger images are segmented in tiles")
    segment_tile_overlap: int = Field(32, ge=0, le=1024, description="pixels each tile shares with its neighbours")
    denoise_tile_size: int = Field(DENOISE_TILE, ge=32, le=8192, description="larger images are denoised in tiles")
    denoise_tile_overlap: int = Field(
        DENOISE_OVERLAP, ge=0, le=1024, description="pixels blended between neighbouring tiles"
    )
    denoise_ensemble_max_pixels: int = Field(
        2_000_000,
        ge=0,
        description="the card's self-ensemble is the default up to this many pixels; larger images get one pass "
        "unless ensemble= asks (a 12 MP colour photo took 3 minutes with 4 passes on 2 cores)",
    )
    workers: int = Field(1, ge=1, le=64, description="HTTP worker processes (1: single process)")
    # multi-process mode: set by the supervisor for its workers, not by users
    engine_socket: str | None = Field(None, description="Unix socket of the inference engine (internal)")
    arena_slots: int = Field(32, ge=1, le=4096, description="shared-memory slots per worker")
    arena_slot_bytes: int = Field(4 * 1024 * 1024, ge=4096, le=1024**3, description="bytes per slot")

    @field_validator("providers", mode="before")
    @classmethod
    def _split(cls, v: object) -> object:
        if isinstance(v, str):
            return [p.strip().lower() for p in v.split(",") if p.strip()]
        return v

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, v: object) -> object:
        return [o.strip() for o in v.split(",") if o.strip()] if isinstance(v, str) else v

    @field_validator("providers")
    @classmethod
    def _providers(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one execution provider")
        if "auto" in v and len(v) > 1:
            raise ValueError("'auto' stands alone; list explicit providers instead")
        if len(set(v)) != len(v):
            raise ValueError("a provider is listed twice")
        return v

    @model_validator(mode="after")
    def _per_model(self) -> Settings:
        for name, b in self.batch_sizes.items():
            if not 1 <= b <= 1024:
                raise ValueError(f"batch size for {name} must be within 1..1024")
        for name, d in self.queue_delays_ms.items():
            if not 0 <= d <= 1000:
                raise ValueError(f"queue delay for {name} must be within 0..1000 ms")
        if 2 * self.denoise_tile_overlap >= self.denoise_tile_size:
            raise ValueError("denoise_tile_overlap must be less than half of denoise_tile_size")
        if 2 * self.segment_tile_overlap >= self.segment_tile_size:
            raise ValueError("segment_tile_overlap must be less than half of segment_tile_size")
        if self.max_queue_length < self.max_batch_size:
            raise ValueError("max_queue_length must hold at least one full batch")
        return self

    def batch_size_for(self, model: str, configured: int | None = None) -> int:
        """CONVSERVE_BATCH_SIZES first, then the model's config.pbtxt ``max_batch_size``, then the default."""
        if model in self.batch_sizes:
            return self.batch_sizes[model]
        return min(configured, self.max_queue_length) if configured else self.max_batch_size

    def queue_delay_for(self, model: str, configured: float | None = None) -> float:
        """CONVSERVE_QUEUE_DELAYS_MS first, then config.pbtxt's ``max_queue_delay_microseconds``, then the default."""
        if model in self.queue_delays_ms:
            return self.queue_delays_ms[model]
        return configured if configured is not None else self.max_queue_delay_ms
