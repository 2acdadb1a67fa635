"""Prometheus metrics of ``flagsync serve`` (``GET /metrics``), in a registry per app.

Request counts and latencies use prometheus-client's own types; evaluations
are counted in a plain dict on the event loop (a bulk request evaluates
every flag: a labelled counter per flag would cost more than the
evaluation) and read at scrape time, as is the state of each environment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from flagsync.runtime._state import ClientState

PREFIX = "flagsync_serve"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Seconds; OFREP answers are sub-millisecond to a few milliseconds (bulk of 1,000 flags).
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServeMetrics:
    """Every metric one server process exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            f"{PREFIX}_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            f"{PREFIX}_request_duration_seconds",
            "Time to answer an HTTP request (event streams: until the stream ends)",
            ["route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        # (env, flag, variant or "") → evaluations
        self.evaluations: dict[tuple[str, str, str], int] = {}
        self._environments: Callable[[], Mapping[str, Any]] = dict
        self.registry.register(_StateCollector(self))

    def follow(self, environments: Callable[[], Mapping[str, Any]]) -> None:
        """Report the state and stream count of these environments at each scrape."""
        self._environments = environments

    def count(self, env: str, flag: str, variant: str | None) -> None:
        key = (env, flag, variant or "")
        evaluations = self.evaluations
        evaluations[key] = evaluations.get(key, 0) + 1

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector:
    def __init__(self, metrics: ServeMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterator[Any]:
        return iter(())  # names are dynamic per scrape; nothing to reserve

    def collect(self) -> Iterator[Any]:
        evaluations = CounterMetricFamily(
            f"{PREFIX}_evaluations",
            "Flag evaluations answered over OFREP, by environment, flag and variant",
            labels=["env", "flag", "variant"],
        )
        for (env, flag, variant), n in sorted(self._metrics.evaluations.items()):
            evaluations.add_metric([env, flag, variant], n)
        yield evaluations
        state = GaugeMetricFamily(
            f"{PREFIX}_state", "1 for the state each environment is in", labels=["env", "state"]
        )
        streams = GaugeMetricFamily(
            f"{PREFIX}_event_streams", "Open change event streams", labels=["env"]
        )
        for name, environment in sorted(self._metrics._environments().items()):
            current = environment.served.state
            for member in ClientState:
                state.add_metric([name, member.value], 1.0 if current is member else 0.0)
            streams.add_metric([name], float(environment.hub.connections))
        yield state
        yield streams


__all__ = ["CONTENT_TYPE", "PREFIX", "ServeMetrics"]
