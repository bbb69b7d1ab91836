"""Prometheus metrics of the service in a registry of its own, appended to BentoML's /metrics
(``Slotcast.__metrics__``): latency per endpoint, fallbacks by reason, the loaded model version."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Tight buckets around the 20 ms p99 target.
BUCKETS = (0.001, 0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class ServingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram(
            "slotcast_request_seconds",
            "Time spent in the slotcast pipeline per endpoint",
            ["endpoint"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "slotcast_fallback_total",
            "Answers that were not fully personalized, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.errors = Counter(
            "slotcast_errors_total",
            "Requests refused, by endpoint and status",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.model_info = Gauge(
            "slotcast_model_info",
            "The loaded model versions (value 1)",
            ["variant", "version"],
            registry=self.registry,
        )

        # Labelled children by label value: ``labels()`` per request takes a lock and builds a key
        # (~4 us); the label values are few and fixed.
        self._latency: dict[str, Any] = {}
        self._fallbacks: dict[str, Any] = {}

    def observe(self, endpoint: str, seconds: float) -> None:
        child = self._latency.get(endpoint)
        if child is None:
            child = self._latency.setdefault(endpoint, self.latency.labels(endpoint=endpoint))
        child.observe(seconds)

    def fallback(self, reason: str) -> None:
        child = self._fallbacks.get(reason)
        if child is None:
            child = self._fallbacks.setdefault(reason, self.fallbacks.labels(reason=reason))
        child.inc()

    def set_models(self, champion: str, challenger: str | None) -> None:
        self.model_info.clear()
        self.model_info.labels(variant="champion", version=champion).set(1)
        if challenger is not None:
            self.model_info.labels(variant="challenger", version=challenger).set(1)

    def render(self) -> str:
        return generate_latest(self.registry).decode()
