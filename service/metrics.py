"""Prometheus metrics, one registry per app. Inference metric names follow Triton's ``nv_inference_*``."""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServiceMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self._http_children: dict[tuple[str, str, int], tuple] = {}
        self.http_requests = Counter(
            "convserve_http_requests_total",
            "HTTP requests by route, model and status",
            ["route", "model", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "convserve_http_request_duration_seconds",
            "HTTP request latency by route",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.request_success = Counter(
            "nv_inference_request_success", "successful inference requests", ["model", "version"], registry=r
        )
        self.request_failure = Counter(
            "nv_inference_request_failure", "failed inference requests", ["model", "version", "reason"], registry=r
        )
        self.inference_count = Counter("nv_inference_count", "images inferred", ["model"], registry=r)
        self.exec_count = Counter("nv_inference_exec_count", "batches executed", ["model"], registry=r)
        self.queue_us = Counter("nv_inference_queue_duration_us", "cumulative queue time (us)", ["model"], registry=r)
        self.compute_us = Counter(
            "nv_inference_compute_infer_duration_us", "cumulative inference time (us)", ["model"], registry=r
        )
        self.queue_seconds = Histogram(
            "convserve_queue_duration_seconds",
            "time a request waited in the queue",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.inference_seconds = Histogram(
            "convserve_inference_duration_seconds",
            "time of one batch's inference",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "convserve_batch_size", "images per executed batch", ["model"], buckets=_BATCH_BUCKETS, registry=r
        )
        self.queue_length = Gauge(
            "convserve_queue_length", "images waiting in the queue", ["model"], registry=r, multiprocess_mode="livesum"
        )
        self.model_ready = Gauge(
            "convserve_model_ready",
            "1 when the model is warmed and serving",
            ["model", "version", "provider"],
            registry=r,
            multiprocess_mode="max",
        )

    def observe_http(self, route: str, model: str, status: int, seconds: float) -> None:
        """One finished HTTP request. Label children are cached: labels() costs a lock and a lookup."""
        key = (route, model, status)
        children = self._http_children.get(key)
        if children is None:
            children = (self.http_requests.labels(route, model, str(status)), self.http_latency.labels(route))
            self._http_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def batch_observer(self, model: str):
        """A callback for the model's batcher: records one executed batch (label children bound once)."""
        queue_length, inference_count = self.queue_length.labels(model), self.inference_count.labels(model)
        exec_count, batch_size = self.exec_count.labels(model), self.batch_size.labels(model)
        inference_seconds, compute_us = self.inference_seconds.labels(model), self.compute_us.labels(model)
        queue_seconds, queue_us = self.queue_seconds.labels(model), self.queue_us.labels(model)

        def observe(rows: int, requests: int, queue_times: list[float], inference_s: float, queued: int) -> None:
            queue_length.set(queued)
            inference_count.inc(rows)
            exec_count.inc()
            batch_size.observe(rows)
            inference_seconds.observe(inference_s)
            compute_us.inc(inference_s * 1e6)
            for q in queue_times:
                queue_seconds.observe(q)
            queue_us.inc(sum(queue_times) * 1e6)

        return observe

    def render(self) -> bytes:
        """This process's metrics; with --workers N, every worker's and the engine's together."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)
            return generate_latest(merged)
        return generate_latest(self.registry)
