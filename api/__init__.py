"""The clinic monolith: `create_app` builds the Flask app (`FLASK_APP=api` finds it)."""
from __future__ import annotations

import os
from typing import Any

from flask import Flask

from api.db import db

# Only these drivers are installed; bare scheme names would pick psycopg2 / MySQLdb.
_DRIVER_SCHEMES = {
    "postgres://": "postgresql+psycopg://",
    "postgresql://": "postgresql+psycopg://",
    "mysql://": "mysql+pymysql://",
    "mariadb://": "mariadb+pymysql://",
}


#: Where the clinic's exports are defined (bq-etl's ETL_EXPORT_MODULES).
EXPORT_MODULES = "api.events_join_data.export_event_join_tables"


def database_uri(url: str) -> str:
    """The SQLAlchemy URL for a `DATABASE_URL`, with the installed driver named when it is not."""
    for scheme, with_driver in _DRIVER_SCHEMES.items():
        if url.startswith(scheme):
            return with_driver + url[len(scheme):]
    return url


def local_development_only() -> bool:
    """The clinic's auth hook for the bq-etl status page: only `flask --debug run` on this machine
    sees it. A real deployment passes its own check (an ops role, SSO) instead."""
    from flask import current_app, request

    return bool(current_app.debug) and request.remote_addr in ("127.0.0.1", "::1")


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app: database from `DATABASE_URL` (else SQLite in the instance folder), then `config`."""
    app = Flask(__name__)
    url = os.environ.get("DATABASE_URL")
    if url is None:
        os.makedirs(app.instance_path, exist_ok=True)
        url = "sqlite:///" + os.path.join(app.instance_path, "clinic.db")
    app.config["SQLALCHEMY_DATABASE_URI"] = database_uri(url)
    app.config.update(config or {})

    db.init_app(app)
    import api.models  # noqa: F401  (registers the tables on db.metadata)

    # --- bq-etl: BigQuery exports of this app's tables ---
    from bq_etl import bq_etl
    app.config.setdefault("ETL_EXPORT_MODULES", os.environ.get("ETL_EXPORT_MODULES", EXPORT_MODULES))
    bq_etl.init_app(app)
    from bq_etl.blueprint import status_blueprint
    app.register_blueprint(status_blueprint(auth=local_development_only), url_prefix="/bq-etl")
    # --- end bq-etl ---

    from api.demo import demo_cli

    app.cli.add_command(demo_cli)
    return app
