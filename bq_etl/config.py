"""The exporter's settings: read from the Flask config (itself seeded from the environment) and
checked in one place, before a command does any work."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import urlparse

from .errors import ConfigError

#: Every setting the exporter reads, with its default. `init_app` seeds each from the
#: environment variable of the same name, so a deployment can use either.
DEFAULTS: dict[str, Any] = {
    "ETL_SYNC_BUCKET": None,
    "ETL_BQ_PROJECT": None,  # None: the Google client infers it (GOOGLE_CLOUD_PROJECT, ADC, metadata)
    "ETL_BQ_DATASET": "events_join_data",
    "ETL_BIGQUERY_API_ENDPOINT": None,  # set only to talk to a BigQuery emulator
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "ETL_QUEUE": "bq-etl",
    "ETL_EXPORT_MODULES": None,  # the host's modules defining its exports, comma-separated
    "ETL_SHARD_RETRIES": 3,
    "ETL_SHARD_RETRY_INTERVALS": "5,30,120",
    "ETL_SHARD_TIMEOUT": 3600,
    "ETL_LOAD_TIMEOUT": 3600,
    "ETL_LOCK_TIMEOUT": 60,
    "ETL_LOCK_WAIT": 1800,
    "ETL_GZIP_LEVEL": 0,
    "ETL_SWEEP_AFTER": 24 * 3600,  # `flask export sweep` gives up runs started longer ago
    "ETL_HISTORY_RUNS": 100,  # runs kept in each table's history (bq_etl/history.py)
    "ETL_LATE_MARGIN": 1800,  # seconds past its cadence's interval before a table counts as late
}

#: The password of a URL's user info (`scheme://user:password@host`), wherever it appears in a text.
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/?#@\s]*:)[^/?#\s]+(?=@)")


def mask_secrets(text: str) -> str:
    """`text` with every URL's password replaced by `***` (`redis://:***@host:6379/0`): what the
    exporter prints or logs goes through this, so no message shows a secret of a setting."""
    return _URL_PASSWORD.sub(r"\g<head>***", str(text))


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")
_DATASET = re.compile(r"^[A-Za-z0-9_]{1,1024}$")
_PROJECT = re.compile(r"^[a-z][a-z0-9:.-]{4,61}[a-z0-9]$")


@dataclass(frozen=True)
class ExportConfig:
    """The checked settings of one app. Build it with `ExportConfig.from_mapping(app.config)`."""

    bucket: str
    project: str | None
    dataset: str
    bigquery_endpoint: str | None
    redis_url: str
    database_url: str
    queue_name: str
    export_modules: tuple[str, ...]
    shard_retries: int
    shard_retry_intervals: tuple[int, ...]
    shard_timeout: int
    load_timeout: int
    lock_timeout: int
    lock_wait: int
    gzip_level: int
    sweep_after: int
    history_runs: int = 100
    late_margin: int = 1800

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> "ExportConfig":
        """Check every setting and return them typed; raise ConfigError naming each bad one."""
        problems: list[str] = []

        def text(key: str, required: bool = True) -> str | None:
            value = config.get(key)
            if value is None or str(value).strip() == "":
                if required:
                    problems.append(f"{key} is not set")
                return None
            return str(value).strip()

        def number(key: str, low: int, high: int) -> int:
            raw = config.get(key, DEFAULTS[key])
            try:
                value = int(raw)
            except (TypeError, ValueError):
                problems.append(f"{key} must be a whole number, got {raw!r}")
                return low
            if not low <= value <= high:
                problems.append(f"{key} must be between {low} and {high}, got {value}")
            return value

        bucket = text("ETL_SYNC_BUCKET")
        if bucket and not _BUCKET.match(bucket):
            hint = f" (the name alone: drop the gs:// prefix, {bucket[5:]!r})" if bucket.startswith("gs://") else ""
            problems.append(f"ETL_SYNC_BUCKET {bucket!r} is not a valid Cloud Storage bucket name{hint}")
        project = text("ETL_BQ_PROJECT", required=False)
        if project and not _PROJECT.match(project):
            problems.append(f"ETL_BQ_PROJECT {project!r} is not a valid Google Cloud project id")
        dataset = text("ETL_BQ_DATASET")
        if dataset and not _DATASET.match(dataset):
            problems.append(f"ETL_BQ_DATASET {dataset!r} may hold only letters, digits and underscores")
        endpoint = text("ETL_BIGQUERY_API_ENDPOINT", required=False)
        if endpoint and urlparse(endpoint).scheme not in ("http", "https"):
            problems.append(f"ETL_BIGQUERY_API_ENDPOINT {endpoint!r} must be an http(s) URL")
        redis_url = text("REDIS_URL")
        if redis_url and urlparse(redis_url).scheme not in ("redis", "rediss", "unix"):
            problems.append(f"REDIS_URL {redis_url!r} must start with redis://, rediss:// or unix://")
        database_url = text("SQLALCHEMY_DATABASE_URI")
        modules = tuple(m.strip() for m in str(config.get("ETL_EXPORT_MODULES") or "").split(",") if m.strip())
        if not modules:
            problems.append("ETL_EXPORT_MODULES names no module")
        intervals_raw = str(config.get("ETL_SHARD_RETRY_INTERVALS", DEFAULTS["ETL_SHARD_RETRY_INTERVALS"]))
        try:
            intervals = tuple(int(part) for part in intervals_raw.split(",") if part.strip())
        except ValueError:
            problems.append(f"ETL_SHARD_RETRY_INTERVALS must be seconds separated by commas, got {intervals_raw!r}")
            intervals = ()
        settings = dict(
            shard_retries=number("ETL_SHARD_RETRIES", 0, 20),
            shard_timeout=number("ETL_SHARD_TIMEOUT", 1, 7 * 24 * 3600),
            load_timeout=number("ETL_LOAD_TIMEOUT", 1, 7 * 24 * 3600),
            lock_timeout=number("ETL_LOCK_TIMEOUT", 5, 3600),
            lock_wait=number("ETL_LOCK_WAIT", 0, 7 * 24 * 3600),
            gzip_level=number("ETL_GZIP_LEVEL", 0, 9),
            sweep_after=number("ETL_SWEEP_AFTER", 60, 90 * 24 * 3600),
            history_runs=number("ETL_HISTORY_RUNS", 1, 100_000),
            late_margin=number("ETL_LATE_MARGIN", 0, 7 * 24 * 3600),
        )
        # A run still within its timeouts must never be swept.
        longest_run = (settings["shard_timeout"] * (settings["shard_retries"] + 1) + sum(intervals)
                       + settings["lock_wait"] + settings["load_timeout"])
        if settings["sweep_after"] <= longest_run:
            problems.append(
                f"ETL_SWEEP_AFTER must be more than the longest a run can take by its timeouts "
                f"(ETL_SHARD_TIMEOUT x (ETL_SHARD_RETRIES + 1) + ETL_SHARD_RETRY_INTERVALS + ETL_LOCK_WAIT "
                f"+ ETL_LOAD_TIMEOUT = {longest_run} s), got {settings['sweep_after']}"
            )
        if problems:
            raise ConfigError(mask_secrets("bq-etl is not configured: " + "; ".join(problems)))
        return cls(
            bucket=bucket, project=project, dataset=dataset, bigquery_endpoint=endpoint,
            redis_url=redis_url, database_url=database_url, queue_name=str(config.get("ETL_QUEUE") or "bq-etl"),
            export_modules=modules, shard_retry_intervals=intervals, **settings,
        )


def defaults_from_environment(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """The defaults, each overridden by an environment variable of the same name when set."""
    return {key: environ.get(key, default) for key, default in DEFAULTS.items()}
