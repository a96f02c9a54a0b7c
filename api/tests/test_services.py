"""The local stand-ins, driven through the official clients and real processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from google.cloud import bigquery
from rq import Queue

from api.demo.services import LocalCloud, local_cloud, local_redis


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory):
    with local_cloud(tmp_path_factory.mktemp("cloud"), project="services-test") as running:
        yield running


def _processes_in(directory: Path) -> list[int]:
    """Pids of live processes whose working directory is ``directory``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if Path(os.readlink(entry / "cwd")) == directory:
                pids.append(int(entry.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return pids


def _accepts_connections(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=1):
            return True
    except OSError:
        return False


def _upload_ndjson(cloud: LocalCloud, bucket: str, name: str, rows: list[dict]) -> None:
    body = "".join(json.dumps(row) + "\n" for row in rows)
    cloud.storage_client().bucket(bucket).blob(name).upload_from_string(
        body, content_type="application/x-ndjson"
    )


def _load(cloud: LocalCloud, uri: str, table: str) -> None:
    config = bigquery.LoadJobConfig(
        source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
        write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
        schema=[
            bigquery.SchemaField("id", "INTEGER", mode="REQUIRED"),
            bigquery.SchemaField("name", "STRING"),
        ],
    )
    cloud.bigquery_client().load_table_from_uri(uri, table, job_config=config).result(timeout=60)


def _rows(cloud: LocalCloud, table: str) -> list[tuple]:
    query = f"SELECT id, name FROM `{table}` ORDER BY id"
    return [tuple(row.values()) for row in cloud.bigquery_client().query(query).result()]


def test_env_points_child_processes_at_the_emulators(cloud: LocalCloud) -> None:
    assert cloud.env() == {
        "STORAGE_EMULATOR_HOST": cloud.storage_url,
        "ETL_BIGQUERY_API_ENDPOINT": cloud.bigquery_url,
        "GOOGLE_CLOUD_PROJECT": "services-test",
    }
    assert _accepts_connections(cloud.storage_url)
    assert _accepts_connections(cloud.bigquery_url)


def test_wildcard_load_from_storage_then_query(cloud: LocalCloud) -> None:
    cloud.storage_client().create_bucket("exports")
    _upload_ndjson(cloud, "exports", "run-1/part-0.json", [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])
    _upload_ndjson(cloud, "exports", "run-1/part-1.json", [{"id": 3, "name": "c"}])
    # Outside the prefix: must not be picked up by the wildcard.
    _upload_ndjson(cloud, "exports", "run-2/part-0.json", [{"id": 9, "name": "z"}])
    bq = cloud.bigquery_client()
    bq.create_dataset("warehouse")
    table = f"{cloud.project}.warehouse.people"

    _load(cloud, "gs://exports/run-1/*.json", table)
    assert _rows(cloud, table) == [(1, "a"), (2, "b"), (3, "c")]

    # WRITE_TRUNCATE replaces the rows rather than appending.
    _load(cloud, "gs://exports/run-2/*.json", table)
    assert _rows(cloud, table) == [(9, "z")]


def test_emulators_are_stopped_when_the_body_raises(tmp_path: Path) -> None:
    data_dir = tmp_path.resolve()
    with pytest.raises(RuntimeError, match="body failed"):
        with local_cloud(data_dir) as running:
            assert len(_processes_in(data_dir)) >= 2
            urls = [running.storage_url, running.bigquery_url]
            raise RuntimeError("body failed")
    assert _processes_in(data_dir) == []
    assert not any(_accepts_connections(url) for url in urls)
    assert (data_dir / "storage-emulator.log").exists()
    assert (data_dir / "bigquery-emulator.log").exists()


def test_local_redis_serves_clients_and_an_rq_worker(tmp_path: Path) -> None:
    with local_redis(tmp_path) as url:
        client = redis.Redis.from_url(url)
        client.set("greeting", "hello")
        assert client.get("greeting") == b"hello"

        job = Queue("default", connection=client).enqueue("operator.add", 2, 3)
        worker = subprocess.run(
            [str(Path(sys.executable).parent / "rq"), "worker", "--burst", "--url", url, "default"],
            capture_output=True, text=True, timeout=60,
        )
        assert worker.returncode == 0, worker.stderr
        job.refresh()
        assert job.get_status() == "finished"
        assert job.return_value() == 5
    # Stopped although `client` is still connected.
    assert not Path(urlsplit(url).path).exists()
    with pytest.raises(redis.ConnectionError):
        client.ping()
