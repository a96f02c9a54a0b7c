"""BaseExportShardManagerTest: what a table's tests subclass to assert on its exported records."""
from __future__ import annotations

import inspect
import os
from typing import Any, Callable, ClassVar, Iterable, Iterator

import orjson
import pytest
from flask import Flask
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import URL, make_url

from .config import mask_secrets
from .manager import ExportShardManager
from .run import ExportRun, new_run_id

#: The config `app_factory` is called with: a scratch in-memory SQLite database.
SCRATCH_CONFIG: dict[str, Any] = {"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://"}


class BaseExportShardManagerTest:
    """Base class for pytest classes testing one export.

    Set `manager_class`; seed the database; call `self.export()` to run every shard of the
    export and get the records it delivered, parsed back from the NDJSON lines exactly as
    BigQuery would read them. Only `ExportShardManager.deliver` is replaced (records are
    captured instead of written to the bucket); querying, sharding, serializing and schema
    validation are the real ones.

    The tests run inside an app context, which comes from an `app` fixture. Either the suite
    has one (it pushes an app context and yields the app), or the class sets `app_factory`,
    the host's app factory: then the class brings its own `app` fixture, which calls
    `app_factory(app_config)` (default `SCRATCH_CONFIG`: an in-memory SQLite database), creates
    the app's tables (`db.create_all()`), and drops them after each test. Because it drops
    them, it first checks that each of the app's databases (the default and every bind in
    SQLALCHEMY_BINDS) is the one `app_config` names and holds none of the app's tables yet,
    and stops the test otherwise (a factory that sets its own database after applying its
    argument, or an `app_config` naming the development database, would otherwise lose that
    database's tables).
    """

    manager_class: ClassVar[type[ExportShardManager]]
    #: The host's app factory, taking a config mapping like Flask's `create_app(test_config)`;
    #: None: the suite's own `app` fixture is used.
    app_factory: ClassVar[Callable[[dict[str, Any]], Flask] | None] = None
    #: What `app_factory` is called with.
    app_config: ClassVar[dict[str, Any]] = SCRATCH_CONFIG

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Only classes that name a factory get this `app` fixture, so a suite's own `app`
        # fixture stays in force for every other class.
        if cls.__dict__.get("app_factory") is not None and "app" not in cls.__dict__:
            cls.app = pytest.fixture(name="app")(_app_from_factory)

    @pytest.fixture(autouse=True)
    def _capture_deliveries(self, app, monkeypatch):
        self.delivered: dict[str, list[dict[str, Any]]] = {}

        def capture(manager, bucket, object_name: str, lines: Iterable[bytes], gzip_level: int) -> int:
            size = 0
            records = []
            for item in lines:  # an item may hold many lines
                size += len(item)
                records.extend(orjson.loads(line) for line in item.splitlines())
            self.delivered[object_name] = records
            return size

        monkeypatch.setattr(self.manager_class, "deliver", capture)

    def export(self, shard_size: int | None = None) -> list[dict[str, Any]]:
        """Export the table now; return its records in shard-key order."""
        manager = self.manager_class()
        if shard_size is not None:
            manager.shard_size = shard_size
        run = ExportRun(manager.table_name, new_run_id())
        shards, _ = manager.plan()
        records: list[dict[str, Any]] = []
        for shard in shards:
            result = manager.export_shard(run, shard, None)
            records.extend(self.delivered[result.object_name])
        return records

    def export_by_key(self, shard_size: int | None = None) -> dict[Any, dict[str, Any]]:
        """Export the table now; return its records by shard key."""
        key = self.manager_class().key_column
        return {record[key]: record for record in self.export(shard_size)}


def _app_from_factory(self: BaseExportShardManagerTest) -> Iterator[Flask]:
    """The app from the class's `app_factory`, in an app context, with fresh tables."""
    owner = type(self).__name__
    factory = type(self).app_factory
    config = dict(self.app_config)
    _check_takes_config(owner, factory)
    requested = config.get("SQLALCHEMY_DATABASE_URI")
    if not requested:
        raise RuntimeError(f"{owner}.app_config names no SQLALCHEMY_DATABASE_URI: the tests create and drop "
                           "every table of the app's database, so name a scratch one (e.g. 'sqlite://')")
    app = factory(config)
    db = app.extensions.get("sqlalchemy")
    if db is None:
        raise RuntimeError(f"{owner}.app_factory made an app without Flask-SQLAlchemy: "
                           "init the app's SQLAlchemy() in the factory")
    with app.app_context():
        _check_databases(owner, factory.__name__, config, db, app.instance_path)
        db.create_all()
        try:
            yield app
        finally:
            db.session.remove()
            db.drop_all()


def _check_takes_config(owner: str, factory: Callable[..., Flask]) -> None:
    """Refuse a factory that cannot be given the test's config (`def create_app():`)."""
    try:
        inspect.signature(factory).bind({})
    except TypeError:
        raise RuntimeError(f"{owner}.app_factory {factory.__name__}() takes no config: give it a parameter "
                           "(def create_app(config=None)) that it applies with app.config.update(config) "
                           "before db.init_app(app), so the tests get the scratch database of app_config") from None
    except ValueError:  # a builtin or C callable without a signature: let the call itself say
        pass


def _check_databases(owner: str, factory: str, config: dict[str, Any], db: Any, instance_path: str) -> None:
    """Refuse an app any of whose databases (the default and each bind) is not the one `config`
    names for it: the tests create and drop every table of every bind."""
    binds = dict(config.get("SQLALCHEMY_BINDS") or {})
    for key, engine in db.engines.items():
        requested = config["SQLALCHEMY_DATABASE_URI"] if key is None else binds.get(key)
        if isinstance(requested, dict):  # Flask-SQLAlchemy's {"url": ..., engine options}
            requested = requested.get("url")
        actual = mask_secrets(engine.url.render_as_string())
        if key is not None and not requested:
            raise RuntimeError(
                f"{owner}: app_factory {factory}() gives the app the bind {key!r} on {actual!r}, which "
                "app_config's SQLALCHEMY_BINDS does not name; the tests create and drop every table of every "
                "bind, so name a scratch database for it there")
        if not _same_database(str(requested), engine.url, instance_path):
            what = "the database" if key is None else f"the bind {key!r} on"
            raise RuntimeError(
                f"{owner}: app_factory {factory}() was asked for {what} {mask_secrets(str(requested))!r} but the "
                f"app's is {actual!r}; the tests create and drop every table, so they touch no database they were "
                "not given. Apply the factory's argument after its own settings and before db.init_app(app) "
                "(app.config.update(config))")
        _check_no_tables(owner, engine, db.metadatas[key])


def _check_no_tables(owner: str, engine: Any, metadata: Any) -> None:
    """Refuse a database that already holds any of the app's tables: drop_all would take them."""
    existing = set(sa_inspect(engine).get_table_names()) & set(metadata.tables)
    if existing:
        raise RuntimeError(
            f"{owner}: the database {mask_secrets(engine.url.render_as_string())!r} already holds the app's "
            f"tables {', '.join(sorted(existing))}; the tests create and drop them, so point app_config at an "
            "empty scratch database (drop them if an interrupted test run left them)")


def _same_database(requested: str, actual: URL, instance_path: str) -> bool:
    """Whether the engine's URL is the one requested, allowing for Flask-SQLAlchemy's rewrite of a
    relative SQLite path into the app's instance folder."""
    wanted = make_url(requested)
    if wanted.get_backend_name() != actual.get_backend_name():
        return False
    if wanted.get_backend_name() == "sqlite":
        database = wanted.database or ""
        if database and database != ":memory:" and not os.path.isabs(database):
            database = os.path.join(instance_path, database)
        return (database or ":memory:") == (actual.database or ":memory:")
    return (wanted.host, wanted.port, wanted.database) == (actual.host, actual.port, actual.database)
