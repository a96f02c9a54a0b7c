"""BaseExportShardManagerTest with `app_factory`: a host suite's tests run on the scratch
databases of `app_config`, and never create or drop tables in a database they were not given;
a model on a Flask-SQLAlchemy bind of its own is exported from that bind.

Each test writes a small host app (a package `shop` with its factory, one model and one export)
and a test suite for it into a folder of its own, and runs that suite with pytest in a process
of its own, as the host would.
"""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

MODELS = '''
from shop import db


class Item(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(50), nullable=False)
'''

EXPORTS = '''
from sqlalchemy import select

from bq_etl import Cadence, ExportShardManager
from shop.models import Item


class ItemsExport(ExportShardManager):
    table_name = "items"
    schema_file = "items.json"
    cadence = Cadence.HOURLY
    shard_key = Item.id

    def query(self):
        return select(Item.id, Item.name)
'''

SCHEMA = '[{"name": "id", "type": "INTEGER", "mode": "REQUIRED"}, {"name": "name", "type": "STRING", "mode": "REQUIRED"}]'

SUITE = '''
from bq_etl.testing import BaseExportShardManagerTest
from shop import create_app, db
from shop.exports import ItemsExport
from shop.models import Item


class TestItemsExport(BaseExportShardManagerTest):
    manager_class = ItemsExport
    app_factory = create_app

    def test_each_item_becomes_one_record(self, app):
        db.session.add(Item(id=1, name="lamp"))
        db.session.commit()
        assert self.export() == [{"id": 1, "name": "lamp"}]
'''

#: The app's own database settings, applied after the factory's argument: what the tests must
#: not run on.
OVERRIDING_FACTORY = '''
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()


def create_app(config=None):
    app = Flask(__name__)
    app.config.from_mapping(config or {})
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///{database}"
    db.init_app(app)
    from shop import models  # noqa: F401
    return app
'''

NO_CONFIG_FACTORY = '''
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()


def create_app():
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///{database}"
    db.init_app(app)
    from shop import models  # noqa: F401
    return app
'''

CONFIG_FACTORY = '''
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()


def create_app(config=None):
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///{database}"
    app.config.update(config or {})
    db.init_app(app)
    from shop import models  # noqa: F401
    return app
'''


#: The app's stock on a Flask-SQLAlchemy bind of its own, as a monolith keeps a second database.
BIND_MODELS = MODELS.replace("class Item(db.Model):\n", "class Item(db.Model):\n    __bind_key__ = 'stock'\n")

#: Its binds from the config, as the tests give them.
BIND_FACTORY = CONFIG_FACTORY.replace(
    '    app.config.update(config or {})\n',
    '    app.config["SQLALCHEMY_BINDS"] = {"stock": "sqlite:///{database}"}\n    app.config.update(config or {})\n')


def host_suite(folder: Path, factory: str, models: str = MODELS) -> Path:
    """Write the host app with `factory` as its package, and its suite; the app's own database
    (a SQLite file) with one row of its own. Returns that database's path."""
    database = folder / "own.db"
    package = folder / "shop"
    (package / "schemas").mkdir(parents=True)
    (package / "__init__.py").write_text(factory.replace("{database}", str(database)))
    (package / "models.py").write_text(models)
    (package / "exports.py").write_text(EXPORTS)
    (package / "schemas" / "items.json").write_text(SCHEMA)
    (folder / "test_items.py").write_text(SUITE)
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL)")
        connection.execute("INSERT INTO item VALUES (7, 'the app''s own row')")
    return database


def run_suite(folder: Path) -> subprocess.CompletedProcess:
    """The host suite, run by pytest in a process of its own from the host's folder."""
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "FLASK_APP")}
    env["PYTHONPATH"] = str(folder)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:bqemulator",
                           "test_items.py"], cwd=folder, env=env, capture_output=True, text=True, timeout=120)


def own_rows(database: Path) -> list[tuple]:
    with sqlite3.connect(database) as connection:
        return connection.execute("SELECT id, name FROM item").fetchall()


def test_a_factory_that_sets_its_own_database_after_the_tests_is_refused_and_its_tables_kept(tmp_path):
    database = host_suite(tmp_path, OVERRIDING_FACTORY)

    result = run_suite(tmp_path)

    assert result.returncode == 1, result.stdout
    assert (f"TestItemsExport: app_factory create_app() was asked for the database 'sqlite://' but the app's is "
            f"'sqlite:///{database}'") in result.stdout
    assert "app.config.update(config)" in result.stdout
    assert own_rows(database) == [(7, "the app's own row")]


def test_a_factory_that_takes_no_config_is_refused_saying_what_to_give_it(tmp_path):
    database = host_suite(tmp_path, NO_CONFIG_FACTORY)

    result = run_suite(tmp_path)

    assert result.returncode == 1, result.stdout
    assert "TestItemsExport.app_factory create_app() takes no config: give it a parameter " \
           "(def create_app(config=None))" in result.stdout
    assert own_rows(database) == [(7, "the app's own row")]


def test_a_factory_that_applies_the_config_runs_the_tests_on_the_scratch_database(tmp_path):
    database = host_suite(tmp_path, CONFIG_FACTORY)

    result = run_suite(tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert own_rows(database) == [(7, "the app's own row")]


def test_a_scratch_database_that_already_holds_the_apps_tables_is_refused_and_they_are_kept(tmp_path):
    database = host_suite(tmp_path, CONFIG_FACTORY)
    suite = tmp_path / "test_items.py"
    suite.write_text(suite.read_text().replace(
        "    app_factory = create_app\n",
        f"    app_factory = create_app\n    app_config = {{'SQLALCHEMY_DATABASE_URI': 'sqlite:///{database}'}}\n"))

    result = run_suite(tmp_path)

    assert result.returncode == 1, result.stdout
    assert (f"TestItemsExport: the database 'sqlite:///{database}' already holds the app's tables item; "
            "the tests create and drop them, so point app_config at an empty scratch database") in result.stdout
    assert own_rows(database) == [(7, "the app's own row")]


def with_app_config(folder: Path, app_config: str) -> None:
    suite = folder / "test_items.py"
    suite.write_text(suite.read_text().replace(
        "    app_factory = create_app\n", f"    app_factory = create_app\n    app_config = {app_config}\n"))


@pytest.mark.parametrize("engine", ["sqlite", "postgresql", "mariadb"])
def test_a_model_on_a_bind_of_its_own_is_read_from_that_bind(tmp_path, database_urls, engine):
    # The default database is an empty in-memory one: only the bind holds the items table.
    database = host_suite(tmp_path, BIND_FACTORY, BIND_MODELS)
    scratch = {"sqlite": f"sqlite:///{tmp_path / 'stock.db'}"}.get(engine) or database_urls[engine]
    with_app_config(tmp_path, f"{{'SQLALCHEMY_DATABASE_URI': 'sqlite://', 'SQLALCHEMY_BINDS': {{'stock': {scratch!r}}}}}")

    result = run_suite(tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert own_rows(database) == [(7, "the app's own row")]


def test_a_bind_the_app_config_does_not_name_is_refused_and_its_tables_kept(tmp_path):
    database = host_suite(tmp_path, BIND_FACTORY, BIND_MODELS)

    result = run_suite(tmp_path)

    assert result.returncode == 1, result.stdout
    assert (f"TestItemsExport: app_factory create_app() gives the app the bind 'stock' on 'sqlite:///{database}', "
            "which app_config's SQLALCHEMY_BINDS does not name") in result.stdout
    assert own_rows(database) == [(7, "the app's own row")]


@pytest.mark.parametrize("requested, actual, expected", [
    ("sqlite://", "sqlite://", True),
    ("sqlite:///test.db", "sqlite:////app/instance/test.db", True),  # Flask-SQLAlchemy's rewrite
    ("sqlite://", "sqlite:////app/instance/test.db", False),
    ("postgresql+psycopg://postgres@127.0.0.1:5432/scratch", "postgresql+psycopg://postgres@127.0.0.1:5432/scratch", True),
    ("postgresql+psycopg://postgres@127.0.0.1:5432/scratch", "postgresql+psycopg://postgres@127.0.0.1:5432/prod", False),
    ("mysql+pymysql://root@127.0.0.1:3306/scratch", "postgresql+psycopg://postgres@127.0.0.1:3306/scratch", False),
])
def test_same_database_compares_backend_host_port_and_database(requested, actual, expected):
    from sqlalchemy.engine import make_url

    from bq_etl.testing import _same_database

    assert _same_database(requested, make_url(actual), "/app/instance") is expected
