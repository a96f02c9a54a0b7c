"""The status page and /metrics: real exports into the emulators, the page served on a local
port and loaded by headless Chromium (Debian's package), and what it shows asserted from the
rendered DOM and the screenshot; the auth hook refusing by default."""
from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
from html.parser import HTMLParser

import pytest
from flask import Response
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.serving import make_server

from api.demo.seed import seed
from bq_etl import history
from bq_etl.blueprint import status_blueprint
from bq_etl.charts import bar_chart
from bq_etl.extension import state
from bq_etl.run import ExportRun, new_run_id
from api.tests.conftest import ROOT
from api.tests.test_pipeline import FAULTS

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]


def cli(app, *args):
    return app.test_cli_runner().invoke(args=["export", *args])


@pytest.fixture
def exported(app, app_env, redis):
    """Real runs in the history: members and practitioners loaded (practitioners twice), a
    bad_tracks run failed on a record the schema refuses, and a killed_tracks run whose
    process was killed after its first shard (so it stays `running`, dead)."""
    seed(40)  # also the 8 care tracks the *_tracks exports read, in shards of 2
    for table in ("members", "practitioners", "practitioners"):
        assert cli(app, "run", table).exit_code == 0
    assert cli(app, "run", "bad_tracks").exit_code == 1
    killed = subprocess.run([sys.executable, "-m", "flask", "export", "run", "killed_tracks"],
                            cwd=ROOT, env={**os.environ, **app_env}, capture_output=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    return app


class Page(HTMLParser):
    """What a test looks for in the rendered DOM: the status rows' cells, each section's chart
    marks per chart, the failures' text."""

    def __init__(self, dom: str):
        super().__init__()
        self.rows: dict[str, list[str]] = {}  # table -> cell texts of its status row
        self.marks: dict[str, dict[str, list[str]]] = {}  # table -> chart -> mark classes
        self.failures = ""
        self._row = self._section = self._chart = None
        self._in_failures = False
        self._cell: list[str] | None = None
        self.feed(dom)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("id") == "failures":
            self._in_failures = True
        if tag == "tr" and "data-table" in attrs:
            self._row = attrs["data-table"]
            self.rows[self._row] = []
        if tag == "td" and self._row:
            self._cell = []
        if tag == "section":
            self._section = attrs["data-table"]
            self.marks[self._section] = {}
        if tag == "svg" and self._section:
            self._chart = attrs["data-chart"]
            self.marks[self._section][self._chart] = []
        if tag == "rect" and self._chart and "mark" in attrs.get("class", "").split():
            self.marks[self._section][self._chart].append(attrs["class"])

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.rows[self._row].append(" ".join("".join(self._cell).split()))
            self._cell = None
        if tag == "tr":
            self._row = None
        if tag == "table":
            self._in_failures = False
        if tag == "svg":
            self._chart = None
        if tag == "section":
            self._section = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._in_failures:
            self.failures += data


@pytest.fixture
def served(exported):
    """The app with the blueprint mounted at /ops (auth: everyone), served on a free local port."""
    exported.register_blueprint(status_blueprint(auth=lambda: True, name="ops"), url_prefix="/ops")
    server = make_server("127.0.0.1", 0, exported, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/ops/"
    server.shutdown()
    thread.join(timeout=30)


def chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("chromium")
    assert binary, "Chromium is missing: apt-get install -y chromium (.ci/run installs it)"
    return subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=180)


@FAULTS
def test_the_page_in_a_headless_browser_shows_every_table_its_runs_and_failures(served, tmp_path):
    dump = chromium(tmp_path, "--window-size=390,844", "--dump-dom", served)
    assert dump.returncode == 0, dump.stderr[-2000:]
    page = Page(dump.stdout)

    tables = sorted(state().tables.names())
    assert sorted(page.rows) == tables
    # cells: table, cadence, freshness, last load, rows in BigQuery, running, last run
    members = page.rows["members"]
    assert members[0] == "members" and members[2] == "fresh" and members[6] == "loaded"
    assert members[4] == f"{state().warehouse.row_count('members'):,}"
    assert page.rows["bad_tracks"][2] == "never" and page.rows["bad_tracks"][6] == "failed"
    assert page.rows["appointments"][3:] == ["never", "-", "-", "-"]
    assert page.rows["killed_tracks"][5] == "1/4 shards, 2 rows, DEAD (no job left)"
    assert "RecordError: table 'bad_tracks', row key 3, column 'name'" in page.failures

    # One mark per run in both charts, coloured by outcome.
    assert page.marks["practitioners"] == {"duration": ["mark loaded"] * 2, "rows": ["mark loaded"] * 2}
    assert page.marks["bad_tracks"]["duration"] == ["mark failed"]
    assert page.marks["killed_tracks"]["rows"] == ["mark dead"]
    assert page.marks["appointments"] == {}  # no runs, no chart

    shot = tmp_path / "status.png"
    result = chromium(tmp_path, "--window-size=390,844", "--hide-scrollbars", f"--screenshot={shot}", served)
    assert result.returncode == 0, result.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (390, 844)
    shutil.copy(shot, "/tmp/bq-etl-status-page.png")  # to look at by hand after a run


@FAULTS
def test_metrics_count_every_run_from_the_history(exported):
    exported.register_blueprint(status_blueprint(auth=lambda: True, name="ops"), url_prefix="/ops")
    response = exported.test_client().get("/ops/metrics")
    assert response.status_code == 200 and response.content_type.startswith("text/plain")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(response.text) for s in family.samples}

    def sample(name, **labels):
        return samples[(name, tuple(sorted(labels.items())))]

    members = history.runs(state().redis, "members")[0]
    assert sample("bq_etl_redis_up") == 1
    assert sample("bq_etl_runs_total", table="practitioners", outcome="loaded") == 2
    assert sample("bq_etl_runs_total", table="bad_tracks", outcome="failed") == 1
    assert sample("bq_etl_runs_total", table="members", outcome="failed") == 0
    assert sample("bq_etl_rows_exported_total", table="members") == members.rows > 0
    assert sample("bq_etl_bytes_exported_total", table="members") == members.bytes
    assert sample("bq_etl_run_duration_seconds_count", table="practitioners") == 2
    assert sample("bq_etl_run_duration_seconds_bucket", table="practitioners", le="+Inf") == 2
    assert 0 <= sample("bq_etl_seconds_since_last_load", table="members") < 600
    assert ("bq_etl_seconds_since_last_load", (("table", "appointments"),)) not in samples
    assert sample("bq_etl_table_ok", table="members") == 1 and sample("bq_etl_table_ok", table="bad_tracks") == 0
    assert sample("bq_etl_late_after_seconds", table="members") == 3 * 3600 + 1800
    assert sample("bq_etl_runs_running", table="killed_tracks", alive="false") == 1
    assert sample("bq_etl_runs_running", table="killed_tracks", alive="true") == 0
    assert sample("bq_etl_runs_total", table="killed_tracks", outcome="abandoned") == 0  # not swept yet


def test_without_redis_the_page_is_a_503_and_the_metrics_say_redis_is_down(app):
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    for cached in ("config", "redis"):
        state().__dict__.pop(cached, None)
    app.register_blueprint(status_blueprint(auth=lambda: True, name="ops"), url_prefix="/ops")
    client = app.test_client()

    page = client.get("/ops/")
    metrics = client.get("/ops/metrics")

    assert page.status_code == 503 and page.content_type.startswith("text/plain")
    assert page.text.startswith("bq-etl status: Redis (REDIS_URL 'redis://127.0.0.1:1/0') does not answer, "
                                "and the run history is kept there: ConnectionError: ")
    assert metrics.status_code == 200
    assert [(s.name, s.value) for family in text_string_to_metric_families(metrics.text)
            for s in family.samples] == [("bq_etl_redis_up", 0)]


def test_a_configuration_the_exporter_refuses_is_a_500_saying_what_to_fix(app, redis):
    app.config["ETL_EXPORT_MODULES"] = "api.events_join_data.no_such_module"
    for cached in ("config", "tables"):
        state().__dict__.pop(cached, None)
    app.register_blueprint(status_blueprint(auth=lambda: True, name="ops"), url_prefix="/ops")
    client = app.test_client()

    for path in ("/ops/", "/ops/metrics"):
        response = client.get(path)
        assert response.status_code == 500 and response.content_type.startswith("text/plain"), path
        assert response.text.startswith(
            "bq-etl status: the exporter's configuration stops it: ETL_EXPORT_MODULES names "
            "'api.events_join_data.no_such_module', which cannot be imported: "), path


def test_the_page_and_status_list_only_failures_no_load_has_come_after(app, redis):
    app.register_blueprint(status_blueprint(auth=lambda: True, name="ops"), url_prefix="/ops")
    client = app.test_client()
    failed = ExportRun("practitioners", new_run_id())
    history.started(redis, failed, "hourly", keep=10)
    history.failed(redis, "practitioners", failed.run_id, RuntimeError("the database went away"))
    failure_line = f"practitioners: run {failed.run_id} failed: RuntimeError: the database went away"

    assert "the database went away" in Page(client.get("/ops/").text).failures
    assert failure_line in cli(app, "status").output.splitlines()

    assert cli(app, "run", "practitioners").exit_code == 0

    assert Page(client.get("/ops/").text).failures == ""
    assert "the database went away" in client.get("/ops/").text  # still in the table's run list
    assert failure_line not in cli(app, "status").output.splitlines()


def test_nothing_is_shown_without_an_auth_check_that_says_yes(app, redis):
    app.register_blueprint(status_blueprint(), name="no_auth", url_prefix="/open")
    app.register_blueprint(status_blueprint(auth=lambda: None, name="forgot_return"), url_prefix="/forgot")
    app.register_blueprint(status_blueprint(
        auth=lambda: Response("log in", 401, {"WWW-Authenticate": 'Basic realm="ops"'}), name="login"),
        url_prefix="/login")
    client = app.test_client()

    for path in ("/open/", "/open/metrics", "/forgot/", "/bq-etl/", "/bq-etl/metrics"):
        response = client.get(path)
        assert response.status_code == 403, path
        assert b"bq_etl" not in response.data and b"members" not in response.data
    assert client.get("/login/").status_code == 401


def test_the_clinic_shows_the_page_only_to_local_debug_requests(app, redis):
    client = app.test_client()
    assert client.get("/bq-etl/").status_code == 403  # not in debug mode
    app.debug = True
    assert client.get("/bq-etl/").status_code == 200
    assert client.get("/bq-etl/", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 403


def test_a_chart_has_one_mark_per_run_scaled_to_the_largest_and_a_run_without_a_value_still_shows():
    chart = bar_chart("rows", [10, None, 5, 0], ["a", "b", "c", "d"], ["loaded", "running", "loaded", "failed"],
                      width=120, height=21)

    assert [bar.height for bar in chart.bars] == [20.0, 1.0, 10.0, 1.0]
    assert [bar.y for bar in chart.bars] == [1.0, 20.0, 11.0, 20.0]
    # 12 slots of 10 (room for more runs), 2 apart
    assert [(bar.x, bar.width) for bar in chart.bars] == [(1.0, 8.0), (11.0, 8.0), (21.0, 8.0), (31.0, 8.0)]
    assert [bar.kind for bar in chart.bars] == ["loaded", "running", "loaded", "failed"]
    assert chart.top == "10"
