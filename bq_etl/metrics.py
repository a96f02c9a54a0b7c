"""The exporter's Prometheus metrics, read from the run history at scrape time.

A custom collector rather than process-local counters: runs are exported by many worker
processes and loaded by others, and every one of them records into the history in Redis, so
one scrape of any web process sees every run. The counters come from the per-table totals the
history keeps beside the bounded run list (they only grow while Redis keeps them; a flushed
Redis starts them at zero, which Prometheus' `rate()` reads as a counter reset).

While Redis does not answer, a scrape still succeeds and says so with `bq_etl_redis_up 0` and
no other family, as Prometheus exporters do (`mysql_up`, `redis_up`): the scrape's own `up`
stays the web process's health, and an alert on `bq_etl_redis_up == 0` names the cause.
"""
from __future__ import annotations

import time
from typing import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from redis.exceptions import RedisError

from . import history
from .extension import ExporterState
from .status import table_statuses


class HistoryCollector:
    """Collects the metrics of every exported table of one app from its run history."""

    def __init__(self, exporter: ExporterState):
        self.exporter = exporter

    def describe(self) -> list[Metric]:
        """Nothing: registering the collector must not read Redis; every scrape does."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Yield the metric families (see docs/operations.md for what each means); only
        `bq_etl_redis_up 0` while Redis does not answer."""
        up = GaugeMetricFamily("bq_etl_redis_up", "1 when this scrape could read the run history in Redis; 0 when "
                                                  "Redis did not answer (then no other bq_etl metric is given).")
        try:
            families = self._families()
        except RedisError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self) -> list[Metric]:
        redis, now = self.exporter.redis, time.time()
        runs = CounterMetricFamily("bq_etl_runs", "Runs that ended, by outcome.", labels=["table", "outcome"])
        rows = CounterMetricFamily("bq_etl_rows_exported", "Rows the shards of ended runs wrote.", labels=["table"])
        sizes = CounterMetricFamily("bq_etl_bytes_exported", "Bytes of files the shards of ended runs wrote.",
                                    labels=["table"])
        durations = HistogramMetricFamily("bq_etl_run_duration_seconds", "How long ended runs took, start to end.",
                                          labels=["table"])
        since = GaugeMetricFamily("bq_etl_seconds_since_last_load",
                                  "Seconds since the table's last successful load finished.", labels=["table"])
        late = GaugeMetricFamily("bq_etl_late_after_seconds",
                                 "Age of the last load past which the table is late (stale at twice).",
                                 labels=["table"])
        ok = GaugeMetricFamily("bq_etl_table_ok",
                               "1 while the table is fresh and its last ended run did not fail; 0 otherwise.",
                               labels=["table"])
        overwritten = GaugeMetricFamily(
            "bq_etl_table_overwritten",
            "1 while an older run's write went over the table's last load (WriteRace) and no run has loaded since.",
            labels=["table"])
        running = GaugeMetricFamily("bq_etl_runs_running",
                                    "Runs recorded as running; alive=false: nothing left to finish them.",
                                    labels=["table", "alive"])
        for status in table_statuses(self.exporter, now):
            table = status.table
            totals = history.totals(redis, table)
            for outcome in history.OUTCOMES[1:]:
                runs.add_metric([table, outcome], totals.get(f"runs:{outcome}", 0))
            rows.add_metric([table], totals.get("rows", 0))
            sizes.add_metric([table], totals.get("bytes", 0))
            count = totals.get("seconds:count", 0)
            buckets = [(str(float(b)), totals.get(f"seconds:le:{b}", 0)) for b in history.DURATION_BUCKETS]
            durations.add_metric([table], buckets + [("+Inf", count)], sum_value=totals.get("seconds:sum", 0))
            if status.age is not None:
                since.add_metric([table], status.age)
            late.add_metric([table], status.late_after)
            ok.add_metric([table], 1 if status.ok else 0)
            overwritten.add_metric([table], 1 if status.overwritten_by else 0)
            live = [run for run in history.runs(redis, table) if run.outcome == "running"]
            running.add_metric([table, "true"], sum(run.alive is not False for run in live))
            running.add_metric([table, "false"], sum(run.alive is False for run in live))
        return [runs, rows, sizes, durations, since, late, ok, overwritten, running]


def metrics_text(exporter: ExporterState) -> bytes:
    """The metrics in Prometheus' text exposition format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HistoryCollector(exporter))
    return generate_latest(registry)
