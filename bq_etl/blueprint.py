"""The status page and the metrics endpoint, as a Flask blueprint the host mounts and guards.

    app.register_blueprint(status_blueprint(auth=is_ops_user), url_prefix="/bq-etl")

`auth` is the host's own check, called before every request to the blueprint: it returns
True to let the request through, a response to send instead (e.g. a 401 asking for login),
or anything else for 403. Without `auth` every request is refused (403), so a blueprint
mounted in a hurry shows nothing: run ids, table names and error messages are not public.

Both read only Redis. While it does not answer, the page is a short 503 saying so, and
`/metrics` still answers, with `bq_etl_redis_up 0` (see `metrics`). A configuration the
exporter refuses (a missing setting, an export module that does not import, a schema file it
cannot read) makes both a short 500 that says what to fix, not the host's error page.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from flask import Blueprint, Response, abort, render_template, request
from redis.exceptions import RedisError

from . import history
from .charts import bar_chart
from .config import mask_secrets
from .errors import ExportError
from .extension import state
from .logs import describe
from .status import duration, progress, table_statuses

#: Runs shown per table on the page (`?runs=N`, up to the history's bound, changes it).
PAGE_RUNS = 30


def status_blueprint(auth: Callable[[], Any] | None = None, name: str = "bq_etl_status") -> Blueprint:
    """The status page (`/`) and Prometheus metrics (`/metrics`), refused (403) unless `auth()`
    returns True for the request; `name` must differ if the host mounts it twice."""
    blueprint = Blueprint(name, __name__, template_folder="templates")

    @blueprint.before_request
    def guard() -> Any:
        if auth is None:
            abort(403, description="bq-etl status: the host registered no auth check "
                                   "(status_blueprint(auth=...)), so nothing is shown")
        verdict = auth()
        if verdict is True:
            return None
        if isinstance(verdict, Response):
            return verdict
        abort(403)

    @blueprint.errorhandler(RedisError)
    def redis_down(error: RedisError) -> Response:
        redis_url = mask_secrets(state().config.redis_url)
        return Response(f"bq-etl status: Redis (REDIS_URL {redis_url!r}) does not answer, and the run history "
                        f"is kept there: {describe(error)}\n", 503, content_type="text/plain; charset=utf-8")

    @blueprint.errorhandler(ExportError)
    def misconfigured(error: ExportError) -> Response:
        # Raised before anything is read: what the operator must fix, said where they look.
        return Response(f"bq-etl status: the exporter's configuration stops it: {mask_secrets(str(error))}\n", 500,
                        content_type="text/plain; charset=utf-8")

    @blueprint.get("/")
    def page() -> str:
        exporter = state()
        limit = request.args.get("runs", PAGE_RUNS, type=int)
        statuses = table_statuses(exporter)
        runs = {s.table: history.runs(exporter.redis, s.table, max(1, min(limit, 1000))) for s in statuses}
        return render_template("bq_etl/status.html", statuses=statuses, runs=runs, charts=_charts(runs),
                               now=time.time(), duration=duration, progress=progress, utc=_utc)

    @blueprint.get("/metrics")
    def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        from .metrics import metrics_text

        return Response(metrics_text(state()), content_type=CONTENT_TYPE_LATEST)

    return blueprint


def _charts(runs: dict[str, list[history.RunRecord]]) -> dict[str, list]:
    """Per table, oldest run first: a chart of durations and one of rows written."""
    charts = {}
    for table, records in runs.items():
        ordered = list(reversed(records))
        kinds = [run.label.split(" ")[0] if run.alive is not False else "dead" for run in ordered]
        charts[table] = [
            bar_chart("duration", [run.seconds for run in ordered],
                      [f"{run.run_id}: {run.label}, {duration(run.seconds)}" for run in ordered], kinds, unit="s"),
            bar_chart("rows", [run.rows for run in ordered],
                      [f"{run.run_id}: {run.label}, {run.rows:,} rows" for run in ordered], kinds),
        ]
    return charts


def _utc(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp)) if timestamp else "-"
