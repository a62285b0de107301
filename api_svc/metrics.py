"""api_svc's own Prometheus metrics, beside the gRPC ones of facegrid/metrics.py.

Read at scrape time from the objects that hold the state (nothing to keep in step):

| metric | type | meaning |
|---|---|---|
| ``facegrid_index_collections`` | gauge | collections loaded in memory |
| ``facegrid_index_faces`` | gauge | face examples in the loaded indexes |
| ``facegrid_index_rebuilding`` | gauge | 1 while a collection is being (re)built |
| ``facegrid_index_rebuilds_total`` | counter | rebuilds completed (first loads included) |
| ``facegrid_index_sync_connected`` | gauge | 1 while the LISTEN connection is up |
| ``facegrid_index_sync_connects_total`` | counter | LISTEN connections opened (1 + reconnects) |
| ``facegrid_index_sync_pending`` | gauge | notifications received, not applied yet |
| ``facegrid_stats_pending_requests`` | gauge | request counts not written to PostgreSQL yet |
| ``facegrid_stats_dropped_requests_total`` | counter | request counts lost to the tally's bound |
| ``facegrid_stats_failed_writes_total`` | counter | statistics writes that failed (kept, retried) |
| ``facegrid_api_key_stale_answers_total`` | counter | keys served from memory during an outage |

and observed as they happen: ``facegrid_index_rebuild_seconds`` (histogram, one per rebuild) and
``facegrid_index_sync_lag_seconds`` (histogram: from a notification's arrival to its
application in the index).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from api_svc.auth import Authenticator
from api_svc.index_registry import IndexRegistry
from api_svc.index_sync import IndexSync
from api_svc.stats import RequestStats

#: Seconds: a small collection rebuilds in milliseconds, a million faces in tens of seconds.
REBUILD_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0)
#: Seconds: a change normally reaches the index within milliseconds.
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0)


class _StateCollector(Collector):
    def __init__(
        self,
        indexes: IndexRegistry,
        sync: IndexSync,
        stats: RequestStats,
        authenticator: Authenticator,
    ) -> None:
        self._indexes = indexes
        self._sync = sync
        self._stats = stats
        self._authenticator = authenticator

    def collect(self) -> Iterator[Metric]:
        loaded = self._indexes.loaded()
        yield GaugeMetricFamily(
            "facegrid_index_collections", "Collections loaded in memory.", len(loaded)
        )
        yield GaugeMetricFamily(
            "facegrid_index_faces",
            "Face examples in the loaded indexes.",
            sum(len(index) for index in loaded.values()),
        )
        yield GaugeMetricFamily(
            "facegrid_index_rebuilding",
            "1 while a collection is being built.",
            int(self._indexes.rebuilding()),
        )
        yield CounterMetricFamily(
            "facegrid_index_rebuilds", "Index rebuilds completed.", self._indexes.rebuilds
        )
        yield GaugeMetricFamily(
            "facegrid_index_sync_connected",
            "1 while the LISTEN connection is up.",
            int(self._sync.listener_pid is not None),
        )
        yield CounterMetricFamily(
            "facegrid_index_sync_connects", "LISTEN connections opened.", self._sync.connects
        )
        yield GaugeMetricFamily(
            "facegrid_index_sync_pending",
            "Change notifications received and not applied yet.",
            self._sync.pending,
        )
        yield GaugeMetricFamily(
            "facegrid_stats_pending_requests",
            "Request counts not written to PostgreSQL yet.",
            self._stats.pending,
        )
        yield CounterMetricFamily(
            "facegrid_stats_dropped_requests",
            "Request counts lost to the tally's bound.",
            self._stats.dropped,
        )
        yield CounterMetricFamily(
            "facegrid_stats_failed_writes",
            "Statistics writes that failed (their counts are kept and retried).",
            self._stats.failed_writes,
        )
        yield CounterMetricFamily(
            "facegrid_api_key_stale_answers",
            "API keys served from memory while the database was unreachable.",
            self._authenticator.stale_answers,
        )


class ApiMetrics:
    """api_svc's metrics in ``registry``; its two histograms are observed through the
    callbacks IndexRegistry and IndexSync take."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self._rebuild = Histogram(
            "facegrid_index_rebuild_seconds",
            "Time to read and build one collection's index, seconds.",
            buckets=REBUILD_BUCKETS,
            registry=registry,
        )
        self._lag = Histogram(
            "facegrid_index_sync_lag_seconds",
            "Time from a change notification's arrival to its application, seconds.",
            buckets=LAG_BUCKETS,
            registry=registry,
        )

    def rebuilt(self, seconds: float) -> None:
        """A rebuild took ``seconds`` (IndexRegistry's ``on_rebuilt``)."""
        self._rebuild.observe(seconds)

    def applied(self, seconds: float) -> None:
        """A notification was applied ``seconds`` after it arrived (IndexSync's
        ``on_applied``)."""
        self._lag.observe(seconds)

    def watch(
        self,
        indexes: IndexRegistry,
        sync: IndexSync,
        stats: RequestStats,
        authenticator: Authenticator,
    ) -> None:
        """Reports the state of these objects at every scrape."""
        self._registry.register(_StateCollector(indexes, sync, stats, authenticator))
