"""BigQuery table schemas: read the JSON schema files `bq show --schema` prints, and check them."""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .errors import SchemaError

if TYPE_CHECKING:
    from google.cloud.bigquery import SchemaField

#: Every column type a schema may name, mapped to the one name the exporter uses for it.
TYPE_NAMES: dict[str, str] = {
    "INTEGER": "INTEGER", "INT64": "INTEGER",
    "FLOAT": "FLOAT", "FLOAT64": "FLOAT",
    "NUMERIC": "NUMERIC",
    "BIGNUMERIC": "BIGNUMERIC",
    "BOOLEAN": "BOOLEAN", "BOOL": "BOOLEAN",
    "STRING": "STRING",
    "BYTES": "BYTES",
    "TIMESTAMP": "TIMESTAMP",
    "DATETIME": "DATETIME",
    "DATE": "DATE",
    "TIME": "TIME",
    "JSON": "JSON",
    "RECORD": "RECORD", "STRUCT": "RECORD",
}
MODES = ("NULLABLE", "REQUIRED", "REPEATED")

# Limits of parameterised types, NUMERIC(P, S) and BIGNUMERIC(P, S): (max scale, max P - S).
_DECIMAL_LIMITS = {"NUMERIC": (9, 29), "BIGNUMERIC": (38, 38)}


def load_schema(path: str | os.PathLike[str], allow_empty: bool = False) -> list[SchemaField]:
    """Read a BigQuery JSON schema file into schema fields; raise SchemaError naming the file,
    also for a file of no fields unless `allow_empty` (a table needs at least one)."""
    where = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            resource = json.load(f)
    except FileNotFoundError:
        raise SchemaError(f"schema file {where}: not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SchemaError(f"schema file {where}: cannot be read: {e}") from None
    except json.JSONDecodeError as e:
        raise SchemaError(f"schema file {where}: invalid JSON: {e}") from None
    if not isinstance(resource, list):
        raise SchemaError(
            f"schema file {where}: expected a JSON array of fields (as `bq show --schema` prints), "
            f"got a JSON {type(resource).__name__}"
        )
    if not resource and not allow_empty:
        raise SchemaError(f"schema file {where}: holds no fields; a table needs at least one: write them "
                          "(as `bq show --schema` prints them), or run `flask export schema generate <table>` "
                          "for an export without to_record()")
    _check_fields(resource, f"schema file {where}", "")
    from google.cloud.bigquery import SchemaField  # loaded on first use, not with the extension

    return [SchemaField.from_api_repr(item) for item in resource]


def check_schema(fields: Sequence[SchemaField], where: str) -> None:
    """Raise SchemaError (naming `where`) unless `fields` form a schema the exporter can write."""
    _check_fields([field.to_api_repr() for field in fields], where, "")


def type_name(field_type: str | None) -> str:
    """The one name the exporter uses for a column type (`INT64` and `INTEGER` are both `INTEGER`)."""
    return TYPE_NAMES.get(str(field_type).upper(), str(field_type))


def schema_to_json(fields: Iterable[SchemaField]) -> list[dict[str, Any]]:
    """The JSON form of `fields`, as a schema file holds it."""
    return [field.to_api_repr() for field in fields]


def _check_fields(items: list[Any], where: str, parent: str) -> None:
    # Works on the API form (dicts) so that files and hand-built SchemaFields get one check.
    seen: set[str] = set()
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise SchemaError(f"{where}: field #{index + 1}{_under(parent)} is not a JSON object")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise SchemaError(f"{where}: field #{index + 1}{_under(parent)} has no name")
        column = f"{parent}.{name}" if parent else name
        # BigQuery column names are case-insensitive.
        if name.lower() in seen:
            raise SchemaError(f"{where}: duplicate field name {column!r}")
        seen.add(name.lower())
        _check_field(item, where, column)


def _check_field(item: dict[str, Any], where: str, column: str) -> None:
    field_type = item.get("type")
    if not isinstance(field_type, str) or field_type.upper() not in TYPE_NAMES:
        raise SchemaError(
            f"{where}: field {column!r} has unknown type {field_type!r}; "
            f"allowed: {', '.join(TYPE_NAMES)}"
        )
    field_type = TYPE_NAMES[field_type.upper()]
    mode = item.get("mode", "NULLABLE")
    if not isinstance(mode, str) or mode.upper() not in MODES:
        raise SchemaError(f"{where}: field {column!r} has unknown mode {mode!r}; allowed: {', '.join(MODES)}")
    subfields = item.get("fields")
    if field_type == "RECORD":
        if not isinstance(subfields, list) or not subfields:
            raise SchemaError(f"{where}: RECORD field {column!r} has no fields")
        _check_fields(subfields, where, column)
    elif subfields:
        raise SchemaError(f"{where}: field {column!r} of type {field_type} cannot have fields")
    _check_parameters(item, field_type, where, column)
    _check_metadata(item, where, column)


def _check_metadata(item: dict[str, Any], where: str, column: str) -> None:
    # Kept as written and applied to the live table (see schema_drift), so they must be well formed.
    description = item.get("description")
    if description is not None and not isinstance(description, str):
        raise SchemaError(f"{where}: field {column!r}: description must be a string")
    tags = item.get("policyTags")
    if tags is None:
        return
    names = tags.get("names") if isinstance(tags, dict) else None
    if (not isinstance(names, list) or len(names) > 1
            or not all(isinstance(n, str) and "/policyTags/" in n for n in names)):
        raise SchemaError(
            f"{where}: field {column!r}: policyTags must be {{\"names\": [\"projects/P/locations/L/taxonomies/T/"
            f"policyTags/ID\"]}} (at most one policy tag per column)"
        )


def _check_parameters(item: dict[str, Any], field_type: str, where: str, column: str) -> None:
    # The exporter enforces these parameters, so they must be well formed.
    precision = _int_parameter(item, "precision", where, column)
    scale = _int_parameter(item, "scale", where, column)
    max_length = _int_parameter(item, "maxLength", where, column)
    if max_length is not None and (field_type not in ("STRING", "BYTES") or max_length < 1):
        raise SchemaError(
            f"{where}: field {column!r}: maxLength {max_length} needs a STRING or BYTES field and must be >= 1"
        )
    if precision is None and scale is None:
        return
    if field_type not in _DECIMAL_LIMITS:
        raise SchemaError(
            f"{where}: field {column!r}: precision and scale need a NUMERIC or BIGNUMERIC field"
        )
    if precision is None:
        raise SchemaError(f"{where}: field {column!r}: scale needs a precision")
    max_scale, max_integer_digits = _DECIMAL_LIMITS[field_type]
    scale = scale or 0
    if not (0 <= scale <= max_scale and max(1, scale) <= precision <= scale + max_integer_digits):
        raise SchemaError(
            f"{where}: field {column!r}: {field_type}({precision}, {scale}) is out of range; "
            f"need 0 <= scale <= {max_scale} and max(1, scale) <= precision <= scale + {max_integer_digits}"
        )


def _int_parameter(item: dict[str, Any], key: str, where: str, column: str) -> int | None:
    value = item.get(key)
    if value is None:
        return None
    # The REST API writes these int64 parameters as JSON strings.
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise SchemaError(f"{where}: field {column!r}: {key} {value!r} is not an integer")
    try:
        return int(value)
    except ValueError:
        raise SchemaError(f"{where}: field {column!r}: {key} {value!r} is not an integer") from None


def _under(parent: str) -> str:
    return f" of {parent!r}" if parent else ""
