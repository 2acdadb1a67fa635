"""Optional Prometheus metrics (``pip install 'flagsync[prometheus]'``).

A collector computed at scrape time, so evaluation pays nothing extra: the
evaluation counter is read from the :class:`~flagsync.usage.UsageTracker`'s
in-memory totals (the same counts that are flushed to Redis), and the client's
state and source are read from the client. ``register_metrics(client)`` is
enough for a client that counts usage (a Redis-fed ``FlagClient`` does by
default): its own tracker is read at each scrape, so the tracker a forked
child makes for itself is followed too. Metric names are listed in
``docs/usage.md``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from flagsync.details import Source
from flagsync.errors import ConfigurationError
from flagsync.exposures import ExposureExporter
from flagsync.runtime._state import ClientState
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


def _own_usage(client: _Client) -> UsageTracker | None:
    """The tracker counting ``client``'s evaluations (``FlagClient.usage``), if any."""
    usage = getattr(client, "usage", None)
    return usage if isinstance(usage, UsageTracker) else None


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

    def describe(self) -> Iterator[Any]:
        """The metric families without samples: the registry learns their names.

        With the names known, registering a second collector with the same
        ``prefix`` in one registry fails at once instead of producing
        duplicate families, which Prometheus refuses to scrape.
        """
        return self._families(sampled=False)

    def collect(self) -> Iterator[Any]:
        return self._families(sampled=True)

    def _families(self, *, sampled: bool) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        def counter(name: str, documentation: str, value: Callable[[], float]) -> Any:
            return CounterMetricFamily(name, documentation, value=value() if sampled else None)

        def gauge(name: str, documentation: str, value: Callable[[], float]) -> Any:
            return GaugeMetricFamily(name, documentation, value=value() if sampled else None)

        p = self._prefix
        usage = self._usage if self._usage is not None else _own_usage(self._client)
        if usage is not None:
            evaluations = CounterMetricFamily(
                f"{p}_evaluations",
                "Flag evaluations by flag, variant and reason",
                labels=["flag", "variant", "reason"],
            )
            if sampled:
                for (flag, variant, reason), n in sorted(
                    usage.totals().items(), key=lambda item: str(item[0])
                ):
                    reason_text = str(getattr(reason, "value", reason))
                    evaluations.add_metric([flag, variant or "", reason_text], n)
            yield evaluations
            yield counter(
                f"{p}_usage_dropped",
                "Evaluations that usage tracking could not deliver to Redis",
                lambda: usage.dropped,
            )
            yield gauge(
                f"{p}_usage_pending",
                "Evaluations counted but not yet flushed to Redis",
                lambda: usage.pending,
            )
            yield counter(
                f"{p}_usage_flush_failures",
                "Usage flushes that failed (retried later)",
                lambda: usage.failed_flushes,
            )
        exposures = self._exposures
        if exposures is not None:
            yield counter(
                f"{p}_exposures_exported",
                "Experiment exposure events appended to the Redis stream",
                lambda: exposures.exported,
            )
            yield counter(
                f"{p}_exposures_dropped",
                "Experiment exposure events lost (queue full or undeliverable)",
                lambda: exposures.dropped,
            )
        yield gauge(
            f"{p}_snapshot_age_seconds",
            "Seconds since the client last loaded a changed snapshot",
            lambda: max(0.0, self._clock() - self._loaded_at),
        )
        state = GaugeMetricFamily(
            f"{p}_client_state", "1 for the client's current state", labels=["state"]
        )
        source = GaugeMetricFamily(
            f"{p}_snapshot_source", "1 for where the served snapshot came from", labels=["source"]
        )
        if sampled:
            current_state, current_source = self._client.state, self._client.source
            for member in ClientState:
                state.add_metric([member.value], 1.0 if current_state is member else 0.0)
            for origin in Source:
                source.add_metric([origin.value], 1.0 if current_source is origin else 0.0)
        yield state
        yield source


def register_metrics(
    client: _Client,
    usage: UsageTracker | None = None,
    exposures: ExposureExporter | None = None,
    *,
    registry: Any = None,
    prefix: str = "flagsync",
) -> FlagsyncCollector:
    """Register flagsync's collector with ``registry`` (default: the global one).

    ``usage`` defaults to the client's own usage tracker (``client.usage``), so
    a client that counts usage exposes ``<prefix>_evaluations_total`` with no
    further argument; pass a tracker only for one attached as a hook.

    Raises :class:`~flagsync.errors.ConfigurationError` when prometheus-client
    is missing, or when metrics with this ``prefix`` are already registered in
    ``registry`` (two clients in one registry need distinct prefixes).
    """
    try:
        from prometheus_client import REGISTRY
    except ImportError:
        raise ConfigurationError(_MISSING) from None
    collector = FlagsyncCollector(client, usage, exposures, prefix=prefix)
    try:
        (registry if registry is not None else REGISTRY).register(collector)
    except ValueError:  # prometheus-client's "Duplicated timeseries"
        collector.close()  # stop following the client: nothing half-registered
        raise ConfigurationError(
            f"flagsync metrics with prefix {prefix!r} are already registered in this "
            "registry: give each client its own prefix= or registry="
        ) from None
    return collector


__all__ = ["FlagsyncCollector", "register_metrics"]
