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

        # Triton's nv_inference_* families by their exact names and labels, so its dashboards read them.
        # prometheus_client would name a Counter "..._total"; a Gauge that only goes up keeps the name.
        def triton(name: str, doc: str, *extra: str) -> Gauge:
            return Gauge(name, doc, ["model", "version", *extra], registry=r, multiprocess_mode="sum")

        self.request_success = triton("nv_inference_request_success", "successful inference requests")
        self.request_failure = triton("nv_inference_request_failure", "failed inference requests", "reason")
        self.request_duration_us = triton("nv_inference_request_duration_us", "cumulative request time (us)")
        self.inference_count = triton("nv_inference_count", "images inferred")
        self.exec_count = triton("nv_inference_exec_count", "batches executed")
        self.queue_us = triton("nv_inference_queue_duration_us", "cumulative queue time (us)")
        self.compute_us = triton("nv_inference_compute_infer_duration_us", "cumulative inference time (us)")
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
            "convserve_queue_length",
            "images waiting in the queue",
            ["model", "version"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.model_ready = Gauge(
            "convserve_model_ready",
            "1 when the model is warmed and serving",
            ["model", "version", "provider"],
            registry=r,
            multiprocess_mode="max",
        )

    def observe_http(self, route: str, model: str, status: int, seconds: float, version: str = "") -> None:
        """One finished HTTP request; one that reached a model counts as an inference request of that
        model version too. Label children are cached: labels() costs a lock and a lookup."""
        key = (route, model, status, version)
        children = self._http_children.get(key)
        if children is None:
            children = (self.http_requests.labels(route, model, str(status)), self.http_latency.labels(route))
            if model and version:
                outcome = (
                    self.request_success.labels(model, version)
                    if status < 400
                    else self.request_failure.labels(model, version, _failure_reason(status))
                )
                children += (outcome, self.request_duration_us.labels(model, version))
            self._http_children[key] = children
        children[0].inc()
        children[1].observe(seconds)
        if len(children) > 2:
            children[2].inc()
            children[3].inc(seconds * 1e6)

    def batch_observer(self, model: str, version: str):
        """A callback for one model version's batcher: records one executed batch (label children bound once)."""
        queue_length = self.queue_length.labels(model, version)
        inference_count = self.inference_count.labels(model, version)
        exec_count, batch_size = self.exec_count.labels(model, version), self.batch_size.labels(model)
        inference_seconds, compute_us = self.inference_seconds.labels(model), self.compute_us.labels(model, version)
        queue_seconds, queue_us = self.queue_seconds.labels(model), self.queue_us.labels(model, version)

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


def _failure_reason(status: int) -> str:
    """Triton's failure reasons: REJECTED (overload: 503), BACKEND (the model failed: other 5xx),
    OTHER (the request was wrong: 4xx)."""
    return "REJECTED" if status == 503 else "BACKEND" if status >= 500 else "OTHER"
