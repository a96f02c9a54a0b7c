"""The Flask extension: `bq_etl.init_app(app)` wires the exporter into any Flask app."""
from __future__ import annotations

import os
from functools import cached_property

from typing import TYPE_CHECKING

from flask import Flask, current_app
from redis import Redis
from rq import Queue

from .config import ExportConfig, defaults_from_environment, mask_secrets
from .errors import ConfigError, ExportError, SchemaError
from .logs import describe
from .tables import Tables

if TYPE_CHECKING:
    from .storage import Bucket
    from .warehouse import Warehouse


class BqEtl:
    """The exporter as a Flask extension: create it once, call `init_app` in the app factory."""

    def __init__(self, app: Flask | None = None):
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register config defaults (from the environment), the `flask export` commands and state."""
        from .cli import export_cli

        for key, value in defaults_from_environment().items():
            app.config.setdefault(key, value)
        app.extensions["bq_etl"] = ExporterState(app)
        app.cli.add_command(export_cli)


class ExporterState:
    """One app's exporter: its checked settings and the clients built from them, made on first use."""

    def __init__(self, app: Flask):
        self.app = app

    @cached_property
    def config(self) -> ExportConfig:
        """The checked settings; ConfigError if any is missing or wrong."""
        return ExportConfig.from_mapping(self.app.config)

    @cached_property
    def tables(self) -> Tables:
        """The exports this app defines."""
        return Tables.from_modules(self.config.export_modules)

    @cached_property
    def redis(self) -> Redis:
        """The Redis connection RQ and the table locks use."""
        return Redis.from_url(self.config.redis_url)

    @cached_property
    def queue(self) -> Queue:
        """The RQ queue export jobs go on."""
        return Queue(self.config.queue_name, connection=self.redis)

    @cached_property
    def bucket(self) -> Bucket:
        """The sync bucket shards are delivered to."""
        # The Google clients load on first use: importing them costs every host command ~1 s.
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        from .storage import Bucket

        if os.environ.get("STORAGE_EMULATOR_HOST"):
            client = storage.Client(project=self.config.project or "local", credentials=AnonymousCredentials())
        else:
            client = _google(storage.Client, project=self.config.project)
        return Bucket(client, self.config.bucket)

    @cached_property
    def warehouse(self) -> Warehouse:
        """The BigQuery dataset tables are loaded into."""
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        from .warehouse import Warehouse

        if self.config.bigquery_endpoint:
            client = bigquery.Client(
                project=self.config.project or os.environ.get("GOOGLE_CLOUD_PROJECT") or "local",
                credentials=AnonymousCredentials(),
                client_options=ClientOptions(api_endpoint=self.config.bigquery_endpoint),
            )
        else:
            client = _google(bigquery.Client, project=self.config.project)
        return Warehouse(client, self.config.dataset, emulated=bool(self.config.bigquery_endpoint))

    def check(self, services: bool = True) -> None:
        """Check, before any work, everything a run needs and raise one ConfigError naming every
        problem: the settings, the export definitions and each table's schema and options files,
        and (with `services`) that Redis and the database answer and that the bucket exists. No
        message shows a password."""
        self.config
        problems = list(dict.fromkeys(str(error) for error in self._schema_problems()))
        if services:
            problems += self._service_problems()
        if problems:
            raise ConfigError(mask_secrets("; ".join(problems)))

    def check_cloud(self) -> None:
        """Raise one ConfigError if Cloud Storage or BigQuery does not answer, before a command
        that needs only them (`setup`, `schema diff`, `schema plan`) waits out the clients' retries."""
        self.config
        problems = []
        try:
            self.bucket.answers()
        except Exception as error:
            problems.append(self._storage_problem(error))
        try:
            self.warehouse.answers()
        except Exception as error:
            where = f" at ETL_BIGQUERY_API_ENDPOINT {self.config.bigquery_endpoint!r}" \
                if self.config.bigquery_endpoint else ""
            problems.append(f"BigQuery does not answer for dataset {self.config.dataset!r}{where}: "
                            f"{describe(error)}{self._dev_hint}")
        if problems:
            raise ConfigError(mask_secrets("; ".join(problems)))

    def redis_problem(self, error: BaseException) -> str:
        """The line saying Redis does not answer: its URL (no password), why, and, against the
        emulators, whether `flask export dev` (whose Redis it is) still runs."""
        return f"REDIS_URL {mask_secrets(self.config.redis_url)!r} does not answer: {describe(error)}{self._dev_hint}"

    @property
    def _dev_hint(self) -> str:
        # The emulators and the Redis of `flask export dev` stop with it.
        emulated = os.environ.get("STORAGE_EMULATOR_HOST") or self.config.bigquery_endpoint
        return "; is `flask export dev` still running?" if emulated else ""

    def _storage_problem(self, error: Exception) -> str:
        where = f" at STORAGE_EMULATOR_HOST {os.environ['STORAGE_EMULATOR_HOST']!r}" \
            if os.environ.get("STORAGE_EMULATOR_HOST") else ""
        return f"Cloud Storage does not answer for bucket {self.config.bucket!r}{where}: {describe(error)}{self._dev_hint}"

    def _service_problems(self) -> list[str]:
        problems = []
        try:
            self.redis.ping()
        except Exception as error:
            problems.append(self.redis_problem(error))
        # Every bind, not only the default: an export of a model on a bind reads from that bind.
        for key, engine in self.app.extensions["sqlalchemy"].engines.items():
            try:
                with engine.connect() as connection:
                    connection.exec_driver_sql("SELECT 1")
            except Exception as error:
                cause = getattr(error, "orig", None) or error  # the driver's own message, not SQLAlchemy's
                where = f"the database {self.config.database_url!r}" if key is None else \
                    f"the database of bind {key!r} {engine.url.render_as_string(hide_password=False)!r}"
                problems.append(mask_secrets(f"{where} does not answer: {describe(cause)}"))
        try:
            if not self.bucket.exists():
                problems.append(str(self.bucket.missing()))
        except ExportError:
            raise
        except Exception as error:
            problems.append(self._storage_problem(error))
        return problems

    def _schema_problems(self) -> list[SchemaError]:
        problems = []
        for manager in self.tables:
            try:
                export = manager()
                export.schema  # its schema file (unless the export gives its schema in code)
                export.table_options  # its options file, if it has one
            except SchemaError as error:
                problems.append(error)
        return problems

    def workers_listening(self) -> int:
        """How many RQ workers (alive by their heartbeat) listen on the export queue."""
        from rq import Worker

        return Worker.count(connection=self.redis, queue=self.queue)


def _google(client_class, project):
    from google.auth.exceptions import DefaultCredentialsError

    try:
        return client_class(project=project)
    except DefaultCredentialsError as error:
        raise ConfigError(
            f"no Google credentials for {client_class.__module__}: set GOOGLE_APPLICATION_CREDENTIALS "
            f"or run where Application Default Credentials exist, or, to work locally without a cloud "
            f"account, start `flask export dev` and set the variables it prints ({error})"
        ) from error


def state(app: Flask | None = None) -> ExporterState:
    """The exporter of `app` (default: the current app); RuntimeError if init_app was not called."""
    app = app or current_app._get_current_object()
    try:
        return app.extensions["bq_etl"]
    except KeyError:
        raise RuntimeError("bq-etl is not initialised on this app: call bq_etl.init_app(app)") from None


#: The extension object host apps import and call `init_app` on.
bq_etl = BqEtl()
