"""A table's schema derived from its export's query: BigQuery types from the SQLAlchemy types
(dialect-neutral: a `with_variant` column maps by its base type), modes from nullability
(outer joins included), descriptions from `Column(comment=...)`.

`generate` writes the schema file from that, keeping an existing file's hand-written parts
(descriptions, policy tags, precision/scale/maxLength of an unchanged type). `check` compares
the file with the query. An export that overrides `to_record` or `records` reshapes its rows, so
its file cannot be derived whole: only the top-level columns the query and the file share are
compared, and the rest is reported as not derivable, not as a difference; nor can a new file be
generated for it (the query's columns are not the record's fields).

A column whose values no BigQuery type holds exactly (an `Interval`'s timedelta, a `Uuid`'s
UUID, ...) gets no field: every run would refuse its values, so `generate` refuses it and
`check` reports it, each saying what to select instead.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import types as sqltypes
from sqlalchemy.dialects.mysql import SET
from sqlalchemy.dialects.postgresql import CIDR, INET, INTERVAL
from sqlalchemy.sql import elements, functions, operators, selectable

from .errors import SchemaError
from .schema import load_schema, type_name
from .shard import unnamed_columns, unnamed_columns_message

if TYPE_CHECKING:
    from .manager import ExportShardManager

#: Hand-written keys of a schema field that `generate` keeps when the column's type is unchanged.
_KEPT_WITH_TYPE = ("precision", "scale", "maxLength")


@dataclass
class SchemaCheck:
    """What `check` found for one table: differences (a failure) and notes (for information)."""

    table: str
    differences: list[str] = field(default_factory=list)
    not_derivable: list[str] = field(default_factory=list)


def derive_fields(manager: ExportShardManager) -> list[dict[str, Any]]:
    """The query's columns as schema fields (API form); `type` is None where no BigQuery type
    follows from the SQLAlchemy type, or none holds its values exactly."""
    return [item for item, _ in _derived(manager)]


def _derived(manager: ExportShardManager) -> list[tuple[dict[str, Any], str | None]]:
    """Each query column's field, with why no BigQuery type holds its values (None if one does)."""
    statement = manager.query()
    unnamed = unnamed_columns(statement)
    if unnamed:
        raise SchemaError(unnamed_columns_message(manager.table_name, unnamed))
    outer = _outer_tables(statement)
    derived = []
    for name, column in statement.selected_columns.items():
        unheld = _unheld(column.type)
        bq_type, repeated = (None, False) if unheld else _bigquery_type(column.type)
        item: dict[str, Any] = {"name": name, "type": bq_type,
                                "mode": "REPEATED" if repeated else
                                "NULLABLE" if _nullable(column, outer) else "REQUIRED"}
        comment = getattr(_unlabel(column), "comment", None)
        if comment:
            item["description"] = comment
        derived.append((item, f"column {name!r}: {unheld}" if unheld else None))
    return derived


def generate(manager: ExportShardManager) -> tuple[list[dict[str, Any]], list[str]]:
    """The schema file's new content for `manager`, and notes on what could not be derived;
    SchemaError when no file can be derived (see the module docstring)."""
    path = manager.schema_path()
    existing = [f.to_api_repr() for f in load_schema(path, allow_empty=True)] if path.exists() else []
    by_name = {item["name"].lower(): item for item in existing}
    derived_with_notes = _derived(manager)
    derived = [item for item, _ in derived_with_notes]
    notes: list[str] = []
    if not manager.records_are_columns():
        if not existing:
            raise SchemaError(
                f"table {manager.table_name!r}: its records are built by {_reshaper(manager)}, so the query's "
                f"columns are not the record's fields and no schema file can be generated from them; write "
                f"{path} by hand (one field per record key, in the form `bq show --schema --format=prettyjson` "
                f"prints), or compute the fields in query() and drop {_reshaper(manager)}, so that `schema "
                f"generate` can derive them")
        # Reshaped rows: update the fields the query shows in place, keep the rest as written.
        seen = {item["name"].lower(): item for item in derived}
        result = [_keep_hand_written(seen[item["name"].lower()], item)
                  if item["name"].lower() in seen and seen[item["name"].lower()]["type"] else item
                  for item in existing]
        notes += [f"field {item['name']!r}: not derivable (built by {_reshaper(manager)})"
                  for item in existing if item["name"].lower() not in seen]
        notes += [f"query column {item['name']!r} is not a field of {path.name} ({_reshaper(manager)} reshapes it)"
                  for item in derived if item["name"].lower() not in by_name]
        notes += [f"{unheld}; kept as written: {_reshaper(manager)} must convert it"
                  for item, unheld in derived_with_notes if unheld and item["name"].lower() in by_name]
        return result, notes
    unheld = [note for _, note in derived_with_notes if note]
    if unheld:
        raise SchemaError(f"table {manager.table_name!r}: no schema file written, since every run would refuse "
                          f"these columns: {'; '.join(unheld)}")
    result = []
    for item in derived:
        old = by_name.get(item["name"].lower())
        if item["type"] is None:
            if old is None:
                raise SchemaError(f"table {manager.table_name!r}: column {item['name']!r} has a SQLAlchemy type "
                                  "with no BigQuery type; write its field in the schema file by hand")
            notes.append(f"field {item['name']!r}: type not derivable, kept as written")
            result.append(old)
            continue
        result.append(_keep_hand_written(item, old) if old else item)
    return result, notes


def check(manager: ExportShardManager) -> SchemaCheck:
    """Compare `manager`'s schema file with its query's columns."""
    report = SchemaCheck(manager.table_name)
    in_file = {f.name.lower(): f.to_api_repr() for f in manager.schema}
    derived_with_notes = _derived(manager)
    derived = {item["name"].lower(): item for item, _ in derived_with_notes}
    unheld = {item["name"].lower(): note for item, note in derived_with_notes if note}
    reshaped = not manager.records_are_columns()
    for name, item in derived.items():
        written = in_file.get(name)
        if name in unheld and not reshaped:
            report.differences.append(unheld[name])
            continue
        if written is None:
            if reshaped:
                report.not_derivable.append(f"query column {item['name']!r} is not a field "
                                            f"({_reshaper(manager)} reshapes it)")
            else:
                report.differences.append(f"column {item['name']!r}: in the query ({_kind(item)}), "
                                          "not in the schema file")
            continue
        if name in unheld:
            report.not_derivable.append(f"{unheld[name]}; {_reshaper(manager)} must convert it")
        elif item["type"] is None:
            report.not_derivable.append(f"field {item['name']!r}: its SQLAlchemy type has no BigQuery type")
        elif (_type(written), _mode(written)) != (_type(item), _mode(item)):
            report.differences.append(f"column {item['name']!r}: the query gives {_kind(item)}, "
                                      f"the schema file says {_kind(written)}")
    for name, written in in_file.items():
        if name not in derived:
            if reshaped:
                report.not_derivable.append(f"field {written['name']!r}: built by {_reshaper(manager)}")
            else:
                report.differences.append(f"field {written['name']!r}: in the schema file, not in the query")
    return report


def schema_file_text(fields: list[dict[str, Any]]) -> str:
    """The schema file's text: one field per line, as the shipped files are written."""
    lines = [json.dumps(item, ensure_ascii=False) for item in fields]
    return "[\n" + ",\n".join(f"  {line}" for line in lines) + "\n]\n"


def _keep_hand_written(derived: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    item = dict(derived)
    if old.get("description"):
        item["description"] = old["description"]
    if old.get("policyTags"):
        item["policyTags"] = old["policyTags"]
    if _type(old) == _type(item):
        item.update({key: old[key] for key in _KEPT_WITH_TYPE if key in old})
        if old.get("fields"):
            item["fields"] = old["fields"]
    return item


#: What to select instead of a column whose values no BigQuery type holds exactly.
_INTERVAL = ("an Interval (a timedelta), which no BigQuery type holds exactly; select its length as a number "
             "instead, named for its unit, e.g. cast(extract('epoch', column), Numeric(20, 6))"
             ".label('..._seconds') (NUMERIC) on PostgreSQL, or whole seconds (INTEGER)")
_AS_TEXT = "select it as text instead: cast(column, String) (STRING)"


def _unheld(sql_type: Any) -> str | None:
    """Why no BigQuery type holds the values `sql_type` reads as exactly, and what to select
    instead; None if one does (or none is known: then the type is merely not derivable)."""
    while True:
        if isinstance(sql_type, (sqltypes.Interval, INTERVAL)):
            return _INTERVAL
        if isinstance(sql_type, sqltypes.Uuid) and sql_type.as_uuid:
            return f"a Uuid read as uuid.UUID objects, not text; {_AS_TEXT}, or declare it Uuid(as_uuid=False)"
        if isinstance(sql_type, (INET, CIDR)):
            return f"a network address read as an ipaddress object, not text; {_AS_TEXT}"
        if isinstance(sql_type, SET):
            return f"a MySQL SET read as a Python set; {_AS_TEXT}, or split it into a REPEATED field in to_record()"
        if isinstance(sql_type, sqltypes.PickleType):
            return "pickled Python objects, which BigQuery cannot read; select the values the table should hold"
        if isinstance(sql_type, sqltypes.ARRAY) and (
                isinstance(sql_type.item_type, sqltypes.ARRAY) or (sql_type.dimensions or 1) > 1):
            return ("an array of arrays, which BigQuery arrays cannot hold; select it as JSON instead "
                    "(func.to_json(column), a JSON field) or one dimension of it")
        if not isinstance(sql_type, sqltypes.TypeDecorator):
            return None
        sql_type = sql_type.impl_instance


def _bigquery_type(sql_type: Any) -> tuple[str | None, bool]:
    """(BigQuery type, repeated) for a SQLAlchemy type."""
    if isinstance(sql_type, sqltypes.TypeDecorator):
        sql_type = sql_type.impl_instance
    if isinstance(sql_type, sqltypes.ARRAY):
        return _bigquery_type(sql_type.item_type)[0], True
    if isinstance(sql_type, sqltypes.Boolean):
        return "BOOLEAN", False
    if isinstance(sql_type, sqltypes.Integer):
        return "INTEGER", False
    if isinstance(sql_type, sqltypes.Float):  # before Numeric: Float is a Numeric
        return "FLOAT", False
    if isinstance(sql_type, sqltypes.Numeric):
        scale, precision = sql_type.scale or 0, sql_type.precision
        fits = scale <= 9 and (precision is None or precision - scale <= 29)
        return ("NUMERIC" if fits else "BIGNUMERIC"), False
    if isinstance(sql_type, (sqltypes.String, sqltypes.Uuid)):
        return "STRING", False
    if isinstance(sql_type, sqltypes.LargeBinary):
        return "BYTES", False
    if isinstance(sql_type, sqltypes.DateTime):
        return ("TIMESTAMP" if sql_type.timezone else "DATETIME"), False
    if isinstance(sql_type, sqltypes.Date):
        return "DATE", False
    if isinstance(sql_type, sqltypes.Time):
        return "TIME", False
    if isinstance(sql_type, sqltypes.JSON):
        return "JSON", False
    return None, False


def _nullable(expression: Any, outer: set[Any]) -> bool:
    """Whether the column can be NULL in the query's result (when unsure: yes)."""
    expression = _unlabel(expression)
    if isinstance(expression, elements.ColumnClause) and getattr(expression, "table", None) is not None:
        if _key(expression.table) in outer:
            return True
        return bool(getattr(expression, "nullable", True))
    if isinstance(expression, elements.BinaryExpression):
        if expression.operator in (operators.is_, operators.is_not):
            return False
        return _nullable(expression.left, outer) or _nullable(expression.right, outer)
    if isinstance(expression, functions.count):
        return False
    if isinstance(expression, functions.FunctionElement):
        return any(_nullable(argument, outer) for argument in expression.clauses)
    if isinstance(expression, (elements.Cast, elements.TypeCoerce)):
        return _nullable(expression.clause, outer)
    if isinstance(expression, selectable.ScalarSelect):
        inner = list(expression.element.selected_columns)
        # An aggregate COUNT without GROUP BY always returns one non-NULL row.
        return not (len(inner) == 1 and isinstance(_unlabel(inner[0]), functions.count)
                    and not expression.element._group_by_clauses)
    if isinstance(expression, (elements.BindParameter, elements.TextClause)):
        return getattr(expression, "value", None) is None
    return True


def _outer_tables(statement: Any) -> set[Any]:
    """The tables on the optional side of an outer join: their columns may be NULL."""
    found: set[Any] = set()

    def walk(clause: Any, optional: bool) -> None:
        if isinstance(clause, selectable.Join):
            walk(clause.left, optional or clause.full)
            walk(clause.right, optional or clause.isouter)
        elif optional:
            found.add(_key(clause))

    for clause in statement.get_final_froms():
        walk(clause, False)
    return found


def _key(clause: Any) -> Any:
    # ORM aliases and annotated tables are copies of one selectable: compare what they wrap.
    clause = clause._deannotate() if hasattr(clause, "_deannotate") else clause
    return (type(clause).__name__, getattr(clause, "name", None), getattr(getattr(clause, "element", None), "name", None))


def _unlabel(expression: Any) -> Any:
    while isinstance(expression, elements.Label):
        expression = expression.element
    return expression


def _reshaper(manager: ExportShardManager) -> str:
    from .manager import ExportShardManager

    return "records()" if type(manager).records is not ExportShardManager.records else "to_record()"


def _type(item: dict[str, Any]) -> str:
    return type_name(item.get("type"))


def _mode(item: dict[str, Any]) -> str:
    return str(item.get("mode") or "NULLABLE").upper()


def _kind(item: dict[str, Any]) -> str:
    return f"{_type(item)} {_mode(item)}"
