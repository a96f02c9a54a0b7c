"""bq-etl: export a Flask + Flask-SQLAlchemy app's tables into BigQuery through RQ workers.

    from bq_etl import bq_etl, ExportShardManager, Cadence

    bq_etl.init_app(app)            # in the app factory: adds `flask export ...`

Importing this package loads neither the Google clients nor a database driver; they load on
first use.
"""
from .cadence import Cadence
from .errors import (ConfigError, ExportError, LoadError, LockLost, LockTimeout, RecordError, RowCountMismatch,
                     SchemaError, ShrinkError, UnknownTableError, WriteRace)
from .extension import BqEtl, bq_etl
from .manager import ExportShardManager

__all__ = [
    "BqEtl", "Cadence", "ConfigError", "ExportError", "ExportShardManager", "LoadError", "LockLost", "LockTimeout",
    "RecordError", "RowCountMismatch", "SchemaError", "ShrinkError", "UnknownTableError", "WriteRace", "bq_etl",
]
