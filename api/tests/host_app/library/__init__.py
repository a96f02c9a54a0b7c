"""A library's catalogue: a Flask + Flask-SQLAlchemy app that adopts bq-etl as README.md says."""
from __future__ import annotations

import os
from typing import Any

from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from bq_etl import bq_etl

db = SQLAlchemy()


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """The app: its database from DATABASE_URL (else SQLite in the instance folder), then `config`."""
    app = Flask(__name__)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get(
        "DATABASE_URL", "sqlite:///" + os.path.join(app.instance_path, "library.db"))
    app.config["ETL_EXPORT_MODULES"] = "library.exports"
    app.config["ETL_BQ_DATASET"] = os.environ.get("ETL_BQ_DATASET", "library")  # the app's own dataset
    app.config.update(config or {})
    db.init_app(app)
    from library import models  # noqa: F401  (registers the tables)

    bq_etl.init_app(app)
    return app
