"""Schema drift: how the repository's schema and options differ from the live BigQuery table,
which of those differences a run may apply by itself, and the table they lead to.

A difference is *additive* when BigQuery can apply it to the table in place and every reader's
query keeps working: a new NULLABLE (or REPEATED) column, REQUIRED relaxed to NULLABLE, a new
description, policy tag, label or clustering. It is *breaking* otherwise: a column removed or
retyped, NULLABLE made REQUIRED, a new REQUIRED column, other partitioning. A breaking change is
applied only when the table's options raise `schema_version` above the version the live table
was migrated to (its label `bq_etl_schema_version`); otherwise the run stops with
`BreakingSchemaChange` before it writes anything.

What the repository does not declare (a column description it leaves out, labels it does not
name, partitioning or clustering it does not mention) is not drift: the live table keeps it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Sequence

from .errors import SchemaError
from .schema import type_name
from .table_options import SCHEMA_VERSION_LABEL, Partitioning, TableOptions, options_path

if TYPE_CHECKING:
    from google.cloud.bigquery import SchemaField, Table

#: Kinds of change that alter the table's columns (names, types, modes).
SHAPE_KINDS = ("added", "removed", "retyped", "mode")


class BreakingSchemaChange(SchemaError):
    """The schema file asks for a change that would break the live table's readers, and the
    table's options do not allow it (raise `schema_version`); the live table is untouched."""

    outcome = "refused"


@dataclass(frozen=True)
class Change:
    """One difference between the repository and the live table."""

    kind: str
    column: str | None
    before: Any
    after: Any
    breaking: bool

    def describe(self) -> str:
        """One line for `flask export schema diff` and `plan`."""
        if self.kind == "created":
            return "table does not exist: the next run creates it"
        what = {"added": "added column", "removed": "removed column", "retyped": "retyped column",
                "label": "label"}.get(self.kind, f"{self.kind} of column" if self.column else self.kind)
        what = f"{what} {self.column}" if self.column else what
        return f"{'BREAKING ' if self.breaking else ''}{what}: {_show(self.before)} -> {_show(self.after)}"


@dataclass
class SchemaPlan:
    """The differences for one table and what the run turns the live table into."""

    table: str
    exists: bool
    changes: list[Change]
    #: The schema the live table gets: live column order, new columns at the end, declared
    #: descriptions and policy tags over the live ones, the live ones where none is declared.
    target_schema: list[SchemaField]
    description: str | None
    labels: dict[str, str]
    partitioning: Partitioning | None
    clustering: tuple[str, ...] | None
    live_version: int
    schema_version: int
    options_file: str = ""
    staging_expiration_hours: int = 24

    @property
    def breaking(self) -> list[Change]:
        """The changes that need `schema_version` raised."""
        return [c for c in self.changes if c.breaking]

    @property
    def allowed(self) -> bool:
        """Whether a run may apply every change."""
        return not self.breaking or self.schema_version > self.live_version

    @property
    def shape_changed(self) -> bool:
        """Whether the columns themselves (not only their metadata) change."""
        return any(c.kind in SHAPE_KINDS for c in self.changes)

    @property
    def recreate(self) -> bool:
        """Whether only making the table anew applies the plan (BigQuery cannot repartition)."""
        return any(c.kind == "partitioning" for c in self.changes)

    def require_allowed(self) -> None:
        """Raise BreakingSchemaChange unless every change may be applied."""
        if self.allowed:
            return
        listed = "; ".join(c.describe() for c in self.breaking)
        raise BreakingSchemaChange(
            f"table {self.table!r}: the schema file asks for a breaking change ({listed}); the live table "
            f"was left as it was. Check `flask export schema plan {self.table}`, then set \"schema_version\": "
            f"{self.live_version + 1} in {self.options_file or 'the table options file'} to apply it"
        )

    def to_json(self) -> dict[str, Any]:
        """The plan as `--json` prints it."""
        return {"table": self.table, "exists": self.exists, "drift": bool(self.changes),
                "allowed": self.allowed, "live_schema_version": self.live_version,
                "schema_version": self.schema_version, "changes": [asdict(c) for c in self.changes]}


def plan_schema_change(table: str, live: Table | None, schema: Sequence[SchemaField], options: TableOptions,
                       schema_path: str | None = None) -> SchemaPlan:
    """Compare the repository's `schema` and `options` with the `live` table (None: missing)."""
    from google.cloud.bigquery import SchemaField

    declared = [field.to_api_repr() for field in schema]
    plan = SchemaPlan(
        table=table, exists=live is not None, changes=[], target_schema=[],
        description=options.description, labels=dict(options.labels), partitioning=options.partitioning,
        clustering=options.clustering, live_version=1, schema_version=options.schema_version,
        options_file=str(options_path(schema_path)) if schema_path else "",
        staging_expiration_hours=options.staging_expiration_hours,
    )
    if live is None:
        plan.changes.append(Change("created", None, None, table, False))
        plan.target_schema = [SchemaField.from_api_repr(item) for item in declared]
        plan.description = options.description or options.default_description
        plan.labels[SCHEMA_VERSION_LABEL] = str(options.schema_version)
        return plan
    changes = plan.changes
    merged = _merge([f.to_api_repr() for f in live.schema], declared, "", changes)
    plan.target_schema = [SchemaField.from_api_repr(item) for item in merged]
    _compare_table(live, options, plan)
    return plan


def _compare_table(live: Table, options: TableOptions, plan: SchemaPlan) -> None:
    changes = plan.changes
    if options.description is not None and options.description != (live.description or None):
        changes.append(Change("table description", None, live.description, options.description, False))
    plan.description = options.description if options.description is not None else live.description
    live_partitioning = Partitioning.from_bigquery(live.time_partitioning)
    if options.partitioning is not None and options.partitioning != live_partitioning:
        changes.append(Change("partitioning", None, _partition_text(live_partitioning),
                              _partition_text(options.partitioning), True))
    plan.partitioning = options.partitioning or live_partitioning
    live_clustering = tuple(live.clustering_fields) if live.clustering_fields else None
    if options.clustering is not None and options.clustering != live_clustering:
        changes.append(Change("clustering", None, list(live_clustering or ()), list(options.clustering), False))
    plan.clustering = options.clustering if options.clustering is not None else live_clustering
    labels = dict(live.labels or {})
    for key, value in options.labels.items():
        if labels.get(key) != value:
            changes.append(Change("label", key, labels.get(key), value, False))
    try:
        plan.live_version = int(labels.get(SCHEMA_VERSION_LABEL, "1"))
    except ValueError:
        plan.live_version = 1
    if options.schema_version != plan.live_version:
        changes.append(Change("schema version", None, plan.live_version, options.schema_version, False))
    # Every label the live table has is kept; the declared ones win.
    plan.labels = {**labels, **options.labels, SCHEMA_VERSION_LABEL: str(max(options.schema_version,
                                                                                plan.live_version))}


def _merge(live: list[dict[str, Any]], declared: list[dict[str, Any]], parent: str,
           changes: list[Change]) -> list[dict[str, Any]]:
    """The target fields (API form): live order first, new columns after, collecting changes."""
    wanted = {item["name"].lower(): item for item in declared}
    merged = []
    for old in live:
        column = _path(parent, old["name"])
        new = wanted.pop(old["name"].lower(), None)
        if new is None:
            changes.append(Change("removed", column, _kind(old), None, True))
            continue
        merged.append(_merge_field(old, new, column, changes))
    for new in wanted.values():
        mode = new.get("mode", "NULLABLE").upper()
        changes.append(Change("added", _path(parent, new["name"]), None, _kind(new), mode == "REQUIRED"))
        merged.append(new)
    return merged


def _merge_field(old: dict[str, Any], new: dict[str, Any], column: str, changes: list[Change]) -> dict[str, Any]:
    result = dict(new)
    if _type(old) != _type(new):
        changes.append(Change("retyped", column, _type(old), _type(new), True))
    old_mode, new_mode = old.get("mode", "NULLABLE").upper(), new.get("mode", "NULLABLE").upper()
    if old_mode != new_mode:
        relaxed = old_mode == "REQUIRED" and new_mode == "NULLABLE"
        changes.append(Change("mode", column, old_mode, new_mode, not relaxed))
    if new.get("description") is None:
        if old.get("description"):
            result["description"] = old["description"]
    elif new["description"] != old.get("description"):
        changes.append(Change("description", column, old.get("description"), new["description"], False))
    old_tags = _tags(old)
    if new.get("policyTags") is None:
        if old_tags:
            result["policyTags"] = old["policyTags"]
    elif _tags(new) != old_tags:
        changes.append(Change("policy tags", column, old_tags, _tags(new), False))
    if _type(old) == _type(new) == "RECORD":
        result["fields"] = _merge(old.get("fields", []), new.get("fields", []), column, changes)
    return result


def _type(item: dict[str, Any]) -> str:
    return type_name(item.get("type"))


def _kind(item: dict[str, Any]) -> str:
    return f"{_type(item)} {item.get('mode', 'NULLABLE').upper()}"


def _tags(item: dict[str, Any]) -> list[str]:
    return sorted((item.get("policyTags") or {}).get("names") or [])


def _path(parent: str, name: str) -> str:
    return f"{parent}.{name}" if parent else name


def _partition_text(partitioning: Partitioning | None) -> str | None:
    if partitioning is None:
        return None
    by = partitioning.field or "_PARTITIONTIME"
    expiry = f", expiring after {partitioning.expiration_ms} ms" if partitioning.expiration_ms else ""
    return f"{partitioning.type} on {by}{expiry}"


def _show(value: Any) -> str:
    return "(none)" if value is None or value == [] else repr(value) if isinstance(value, str) else str(value)

