"""Optional Prometheus metrics (``pip install 'flagsync[prometheus]'``).

A collector computed at scrape time, so evaluation pays nothing extra: the
evaluation counter is read from the :class:`~flagsync.usage.UsageTracker`'s
in-memory totals (the same counts that are flushed to Redis), and the client's
state and source are read from the client. Metric names are listed in
``docs/usage.md``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from flagsync._state import ClientState
from flagsync.details import Source
from flagsync.errors import ConfigurationError
from flagsync.exposures import ExposureExporter
from flagsync.usage import UsageTracker

_MISSING = (
    "Prometheus metrics need the prometheus-client package: pip install 'flagsync[prometheus]'"
)


class _Client(Protocol):
    @property
    def state(self) -> ClientState: ...

    @property
    def source(self) -> Source: ...

    def on_change(self, listener: Callable[[Any], object]) -> Callable[[], None]: ...


class FlagsyncCollector:
    """Yields flagsync's metrics on each scrape; register with :func:`register_metrics`."""

    def __init__(
        self,
        client: _Client,
        usage: UsageTracker | None = None,
        exposures: ExposureExporter | None = None,
        *,
        prefix: str = "flagsync",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._usage = usage
        self._exposures = exposures
        self._prefix = prefix
        self._clock = clock
        self._loaded_at = clock()
        self._undo = client.on_change(self._changed)

    def _changed(self, event: Any) -> None:
        if getattr(event, "flags_changed", None) or getattr(event, "revision", None) != getattr(
            event, "previous_revision", None
        ):
            self._loaded_at = self._clock()

    def close(self) -> None:
        """Stop following the client's change notices."""
        self._undo()

    def describe(self) -> list[Any]:
        return []  # metrics are dynamic (labels appear as flags are evaluated)

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        p = self._prefix
        if self._usage is not None:
            evaluations = CounterMetricFamily(
                f"{p}_evaluations",
                "Flag evaluations by flag, variant and reason",
                labels=["flag", "variant", "reason"],
            )
            for (flag, variant, reason), n in sorted(
                self._usage.totals().items(), key=lambda item: str(item[0])
            ):
                reason_text = str(getattr(reason, "value", reason))
                evaluations.add_metric([flag, variant or "", reason_text], n)
            yield evaluations
            yield CounterMetricFamily(
                f"{p}_usage_dropped",
                "Evaluations that usage tracking could not deliver to Redis",
                value=self._usage.dropped,
            )
            yield GaugeMetricFamily(
                f"{p}_usage_pending",
                "Evaluations counted but not yet flushed to Redis",
                value=self._usage.pending,
            )
            yield CounterMetricFamily(
                f"{p}_usage_flush_failures",
                "Usage flushes that failed (retried later)",
                value=self._usage.failed_flushes,
            )
        if self._exposures is not None:
            yield CounterMetricFamily(
                f"{p}_exposures_exported",
                "Experiment exposure events appended to the Redis stream",
                value=self._exposures.exported,
            )
            yield CounterMetricFamily(
                f"{p}_exposures_dropped",
                "Experiment exposure events lost (queue full or undeliverable)",
                value=self._exposures.dropped,
            )
        yield GaugeMetricFamily(
            f"{p}_snapshot_age_seconds",
            "Seconds since the client last loaded a changed snapshot",
            value=max(0.0, self._clock() - self._loaded_at),
        )
        state = GaugeMetricFamily(
            f"{p}_client_state", "1 for the client's current state", labels=["state"]
        )
        for member in ClientState:
            state.add_metric([member.value], 1.0 if self._client.state is member else 0.0)
        yield state
        source = GaugeMetricFamily(
            f"{p}_snapshot_source", "1 for where the served snapshot came from", labels=["source"]
        )
        for origin in Source:
            source.add_metric([origin.value], 1.0 if self._client.source is origin else 0.0)
        yield source


def register_metrics(
    client: _Client,
    usage: UsageTracker | None = None,
    exposures: ExposureExporter | None = None,
    *,
    registry: Any = None,
    prefix: str = "flagsync",
) -> FlagsyncCollector:
    """Register flagsync's collector with ``registry`` (default: the global one)."""
    try:
        from prometheus_client import REGISTRY
    except ImportError:
        raise ConfigurationError(_MISSING) from None
    collector = FlagsyncCollector(client, usage, exposures, prefix=prefix)
    (registry if registry is not None else REGISTRY).register(collector)
    return collector


__all__ = ["FlagsyncCollector", "register_metrics"]
