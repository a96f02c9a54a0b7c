"""A Flask app that is not the clinic: its own SQLAlchemy instance, model and export, to show
that bq-etl works in any app that calls `init_app`."""
from __future__ import annotations

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import Select, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bq_etl.cadence import Cadence
from bq_etl.extension import BqEtl
from bq_etl.manager import ExportShardManager


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
exporter = BqEtl()


class Widget(db.Model):
    __tablename__ = "widgets"

    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str]


class WidgetsExport(ExportShardManager):
    """Every widget."""

    table_name = "widgets"
    schema_file = "widgets.json"
    cadence = Cadence.HOURLY
    shard_key = Widget.id
    shard_size = 2

    def query(self) -> Select:
        return select(Widget.id, Widget.label)


def create_app(config: dict) -> Flask:
    """The other app, configured only through `config` (no environment)."""
    app = Flask(__name__)
    app.config.update(config)
    db.init_app(app)
    exporter.init_app(app)
    return app
