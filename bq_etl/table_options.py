"""A table's declared BigQuery options: what the repository says the live table carries besides
its columns (description, labels, partitioning, clustering), how long staging tables live, and
the schema version that lets a breaking schema change through.

They live in an optional `<schema file stem>.options.json` beside the schema file; column
descriptions and policy tags stay in the schema file itself (`description`, `policyTags`).
Everything is checked when read, with a SchemaError naming the file and the key.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .errors import SchemaError

if TYPE_CHECKING:
    from google.cloud.bigquery import SchemaField

#: Staging tables expire after this many hours unless the options say otherwise: a run that
#: dies between the staging load and its clean-up leaves nothing behind for long.
DEFAULT_STAGING_EXPIRATION_HOURS = 24
#: Labels the exporter writes itself; the options file may not declare them.
OWNED_LABEL_PREFIX = "bq_etl_"
#: The label on the live table holding the schema version it was last migrated to.
SCHEMA_VERSION_LABEL = "bq_etl_schema_version"
PARTITION_TYPES = ("HOUR", "DAY", "MONTH", "YEAR")
_PARTITION_COLUMN_TYPES = ("TIMESTAMP", "DATE", "DATETIME")
_UNCLUSTERABLE = ("RECORD", "STRUCT", "JSON", "FLOAT", "FLOAT64")
# BigQuery label keys: lowercase letter first, then lowercase letters, digits, _ and -; values
# may also be empty or start with a digit. Both at most 63 characters.
_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
_KEYS = ("description", "labels", "time_partitioning", "clustering", "staging_expiration_hours", "schema_version")


@dataclass(frozen=True)
class Partitioning:
    """Time partitioning of a table: by `field` (a TIMESTAMP, DATE or DATETIME column) or, when
    `field` is None, by ingestion time; `type` is HOUR, DAY, MONTH or YEAR."""

    type: str = "DAY"
    field: str | None = None
    expiration_ms: int | None = None

    def to_bigquery(self) -> Any:
        """The google-cloud-bigquery `TimePartitioning` of this partitioning."""
        from google.cloud.bigquery import TimePartitioning

        return TimePartitioning(type_=self.type, field=self.field, expiration_ms=self.expiration_ms)

    @classmethod
    def from_bigquery(cls, partitioning: Any) -> Partitioning | None:
        """The partitioning a live table has (`Table.time_partitioning`), or None."""
        if partitioning is None:
            return None
        return cls(type=partitioning.type_ or "DAY", field=partitioning.field,
                   expiration_ms=partitioning.expiration_ms)


@dataclass(frozen=True)
class TableOptions:
    """What the repository declares about a table besides its schema; None/empty: not declared,
    so whatever the live table has is kept."""

    description: str | None = None
    #: The description a table is created with when none is declared (the export's docstring);
    #: unlike a declared one it does not override what is set on the live table later.
    default_description: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    partitioning: Partitioning | None = None
    clustering: tuple[str, ...] | None = None
    staging_expiration_hours: int = DEFAULT_STAGING_EXPIRATION_HOURS
    #: Raised by the export's author to let a breaking schema change (retype, removal,
    #: NULLABLE to REQUIRED, new partitioning) be applied to the live table.
    schema_version: int = 1


def options_path(schema_path: str | os.PathLike[str]) -> Path:
    """Where the options of the table whose schema file is `schema_path` live."""
    path = Path(schema_path)
    return path.with_name(f"{path.stem}.options.json")


def load_options(path: str | os.PathLike[str], schema: Sequence[SchemaField],
                 default_description: str | None = None) -> TableOptions:
    """Read and check a table's options file; a missing file declares nothing.

    `schema` is the table's schema (partitioning and clustering columns must be in it);
    `default_description` is the description a new table gets when the file declares none.
    """
    where = f"options file {os.fspath(path)}"
    try:
        with open(path, encoding="utf-8") as f:
            resource = json.load(f)
    except FileNotFoundError:
        return TableOptions(default_description=default_description)
    except (OSError, UnicodeDecodeError) as e:
        raise SchemaError(f"{where}: cannot be read: {e}") from None
    except json.JSONDecodeError as e:
        raise SchemaError(f"{where}: invalid JSON: {e}") from None
    if not isinstance(resource, dict):
        raise SchemaError(f"{where}: expected a JSON object, got a JSON {type(resource).__name__}")
    unknown = sorted(set(resource) - set(_KEYS))
    if unknown:
        raise SchemaError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(_KEYS)}")
    columns = {f.name.lower(): f for f in schema}
    description = resource.get("description")
    if description is not None and not isinstance(description, str):
        raise SchemaError(f"{where}: key 'description' must be a string")
    return TableOptions(
        description=description,
        default_description=default_description,
        labels=_labels(resource.get("labels", {}), where),
        partitioning=_partitioning(resource.get("time_partitioning"), columns, where),
        clustering=_clustering(resource.get("clustering"), columns, where),
        staging_expiration_hours=_positive(resource, "staging_expiration_hours",
                                           DEFAULT_STAGING_EXPIRATION_HOURS, where),
        schema_version=_positive(resource, "schema_version", 1, where),
    )


def _labels(labels: Any, where: str) -> dict[str, str]:
    if not isinstance(labels, dict):
        raise SchemaError(f"{where}: key 'labels' must be an object of label to value")
    for key, value in labels.items():
        if not _LABEL_KEY.fullmatch(key):
            raise SchemaError(f"{where}: labels: {key!r} is not a BigQuery label key (lowercase letter first, "
                              "then lowercase letters, digits, _ or -, at most 63)")
        if key.startswith(OWNED_LABEL_PREFIX):
            raise SchemaError(f"{where}: labels: {key!r}: labels starting {OWNED_LABEL_PREFIX!r} are the exporter's own")
        if not isinstance(value, str) or not _LABEL_VALUE.fullmatch(value):
            raise SchemaError(f"{where}: labels: {key!r} has value {value!r}; a label value is a string of "
                              "lowercase letters, digits, _ or -, at most 63")
    return dict(labels)


def _partitioning(spec: Any, columns: dict[str, SchemaField], where: str) -> Partitioning | None:
    if spec is None:
        return None
    if not isinstance(spec, dict) or set(spec) - {"type", "field", "expiration_ms"}:
        raise SchemaError(f"{where}: key 'time_partitioning' must be an object with type, field, expiration_ms")
    kind = spec.get("type", "DAY")
    if kind not in PARTITION_TYPES:
        raise SchemaError(f"{where}: time_partitioning.type {kind!r}; allowed: {', '.join(PARTITION_TYPES)}")
    column = spec.get("field")
    if column is not None:
        found = columns.get(str(column).lower())
        if found is None or found.field_type not in _PARTITION_COLUMN_TYPES or found.mode == "REPEATED":
            raise SchemaError(f"{where}: time_partitioning.field {column!r} must be a top-level TIMESTAMP, "
                              "DATE or DATETIME column of the schema file")
    expiration = spec.get("expiration_ms")
    if expiration is not None and (isinstance(expiration, bool) or not isinstance(expiration, int) or expiration < 1):
        raise SchemaError(f"{where}: time_partitioning.expiration_ms must be a positive integer")
    return Partitioning(type=kind, field=column, expiration_ms=expiration)


def _clustering(spec: Any, columns: dict[str, SchemaField], where: str) -> tuple[str, ...] | None:
    if spec is None:
        return None
    if not isinstance(spec, list) or not 1 <= len(spec) <= 4:
        raise SchemaError(f"{where}: key 'clustering' must be a list of one to four column names")
    for column in spec:
        found = columns.get(str(column).lower())
        if found is None or found.field_type in _UNCLUSTERABLE or found.mode == "REPEATED":
            raise SchemaError(f"{where}: clustering column {column!r} must be a top-level, non-repeated column "
                              "of the schema file, not RECORD, JSON or FLOAT")
    return tuple(spec)


def _positive(resource: dict[str, Any], key: str, default: int, where: str) -> int:
    value = resource.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SchemaError(f"{where}: key {key!r} must be a positive integer, got {value!r}")
    return value
