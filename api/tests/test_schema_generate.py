"""Schema files derived from an export's query (schema_generate), and table options files
(table_options). The query is only compiled, never run, so its tables need no database."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Row, Select, func, select
from sqlalchemy.dialects.postgresql import INET

from bq_etl.cadence import Cadence
from bq_etl.errors import SchemaError
from bq_etl.manager import ExportShardManager
from bq_etl.schema import load_schema
from bq_etl.schema_generate import check, derive_fields, generate, schema_file_text
from bq_etl.table_options import Partitioning, TableOptions, load_options

metadata = sa.MetaData()
clinics = sa.Table("clinics", metadata, sa.Column("id", sa.Integer, primary_key=True),
                   sa.Column("name", sa.String(50), nullable=False))
visits = sa.Table(
    "visits", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, comment="Visit id."),
    sa.Column("clinic_id", sa.ForeignKey("clinics.id")),
    sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("local_start", sa.DateTime(), nullable=False),
    sa.Column("fee", sa.Numeric(10, 2), nullable=False),
    sa.Column("exact", sa.Numeric(40, 12)),
    sa.Column("score", sa.Double),
    sa.Column("notes", sa.Text),
    sa.Column("scan", sa.LargeBinary),
    sa.Column("extra", sa.JSON, nullable=False),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("at", sa.Time),
    sa.Column("flagged", sa.Boolean, nullable=False),
)


class VisitsExport(ExportShardManager):
    """Visits with their clinic.

    Second paragraph: not part of the table description."""

    table_name = "visits"
    schema_file = "visits.json"
    cadence = Cadence.HOURLY
    shard_key = visits.c.id
    folder: Path

    @classmethod
    def schema_path(cls) -> Path:
        return cls.folder / cls.schema_file

    def query(self) -> Select:
        other = clinics.alias("other")
        return select(
            *visits.c,
            clinics.c.name.label("clinic_name"),
            visits.c.notes.is_(None).label("no_notes"),
            func.char_length(visits.c.notes).label("notes_length"),
            select(func.count()).select_from(other).where(other.c.id == visits.c.clinic_id)
            .correlate(visits).scalar_subquery().label("clinics"),
        ).outerjoin(clinics, clinics.c.id == visits.c.clinic_id)


@pytest.fixture
def export(tmp_path):
    VisitsExport.folder = tmp_path
    return VisitsExport()


def test_types_modes_and_comments_follow_the_query(export):
    assert [(f["name"], f["type"], f["mode"], f.get("description")) for f in derive_fields(export)] == [
        ("id", "INTEGER", "REQUIRED", "Visit id."),
        ("clinic_id", "INTEGER", "NULLABLE", None),
        ("seen_at", "TIMESTAMP", "REQUIRED", None),
        ("local_start", "DATETIME", "REQUIRED", None),
        ("fee", "NUMERIC", "REQUIRED", None),
        ("exact", "BIGNUMERIC", "NULLABLE", None),
        ("score", "FLOAT", "NULLABLE", None),
        ("notes", "STRING", "NULLABLE", None),
        ("scan", "BYTES", "NULLABLE", None),
        ("extra", "JSON", "REQUIRED", None),
        ("day", "DATE", "REQUIRED", None),
        ("at", "TIME", "NULLABLE", None),
        ("flagged", "BOOLEAN", "REQUIRED", None),
        # NOT NULL in its table, but on the optional side of an outer join.
        ("clinic_name", "STRING", "NULLABLE", None),
        ("no_notes", "BOOLEAN", "REQUIRED", None),
        ("notes_length", "INTEGER", "NULLABLE", None),
        ("clinics", "INTEGER", "REQUIRED", None),
    ]


class VisitInstantsExport(VisitsExport):
    """Visits' naive local_start read as the UTC instant it holds, the way the guide says."""

    table_name = "visit_instants"

    def query(self) -> Select:
        return select(visits.c.id, sa.type_coerce(visits.c.local_start, sa.DateTime(timezone=True)).label("started"),
                      sa.type_coerce(visits.c.notes, sa.String).label("notes"))


def test_type_coerce_changes_the_type_and_keeps_the_columns_nullability(tmp_path):
    VisitInstantsExport.folder = tmp_path

    assert [(f["name"], f["type"], f["mode"]) for f in derive_fields(VisitInstantsExport())] == [
        ("id", "INTEGER", "REQUIRED"),
        ("started", "TIMESTAMP", "REQUIRED"),
        ("notes", "STRING", "NULLABLE"),
    ]


def test_generate_keeps_hand_written_descriptions_and_policy_tags(export, tmp_path):
    tag = {"names": ["projects/clinic/locations/eu/taxonomies/1/policyTags/2"]}
    (tmp_path / "visits.json").write_text(json.dumps([
        {"name": "id", "type": "INTEGER", "mode": "REQUIRED", "description": "Our visit id."},
        {"name": "notes", "type": "STRING", "mode": "REQUIRED", "description": "Free text.", "policyTags": tag,
         "maxLength": 500},
        {"name": "gone", "type": "STRING"},
    ]))

    fields, notes = generate(export)
    (tmp_path / "visits.json").write_text(schema_file_text(fields))

    written = {f.name: f for f in load_schema(tmp_path / "visits.json")}
    assert list(written) == [f["name"] for f in derive_fields(export)]
    assert written["id"].description == "Our visit id."
    assert (written["notes"].mode, written["notes"].description, written["notes"].max_length) == (
        "NULLABLE", "Free text.", 500)
    assert written["notes"].policy_tags.names == tuple(tag["names"])
    assert notes == []
    assert check(export).differences == []


def test_check_prints_each_difference_between_file_and_query(export, tmp_path):
    fields = derive_fields(export)
    fields[2]["type"] = "DATETIME"       # seen_at
    fields[1]["mode"] = "REQUIRED"       # clinic_id
    del fields[-1]                       # clinics
    fields.append({"name": "stale", "type": "STRING", "mode": "NULLABLE"})
    (tmp_path / "visits.json").write_text(json.dumps(fields))

    assert check(export).differences == [
        "column 'clinic_id': the query gives INTEGER NULLABLE, the schema file says INTEGER REQUIRED",
        "column 'seen_at': the query gives TIMESTAMP REQUIRED, the schema file says DATETIME REQUIRED",
        "column 'clinics': in the query (INTEGER REQUIRED), not in the schema file",
        "field 'stale': in the schema file, not in the query",
    ]


loans = sa.Table(
    "loans", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("loan_period", sa.Interval),
    sa.Column("token", sa.Uuid),
    sa.Column("address", INET),
    sa.Column("grid", sa.ARRAY(sa.Integer, dimensions=2)),
    sa.Column("code", sa.Uuid(as_uuid=False)),
)


class LoansExport(VisitsExport):
    """Loans, with columns whose values no BigQuery type holds exactly (but `code`)."""

    table_name = "loans"
    schema_file = "loans.json"
    shard_key = loans.c.id

    def query(self) -> Select:
        return select(loans)


UNHELD = [
    "column 'loan_period': an Interval (a timedelta), which no BigQuery type holds exactly; select its length "
    "as a number instead, named for its unit, e.g. cast(extract('epoch', column), Numeric(20, 6))",
    "column 'token': a Uuid read as uuid.UUID objects, not text; select it as text instead: cast(column, String)",
    "column 'address': a network address read as an ipaddress object, not text; select it as text instead",
    "column 'grid': an array of arrays, which BigQuery arrays cannot hold; select it as JSON instead",
]


def test_generate_refuses_a_column_no_bigquery_type_holds_exactly(tmp_path):
    LoansExport.folder = tmp_path

    with pytest.raises(SchemaError) as caught:
        generate(LoansExport())

    message = str(caught.value)
    assert message.startswith("table 'loans': no schema file written, since every run would refuse these columns: ")
    assert all(unheld in message for unheld in UNHELD)
    assert "'code'" not in message  # Uuid(as_uuid=False) reads as text: a STRING field


def test_check_reports_a_column_no_bigquery_type_holds_exactly(tmp_path):
    LoansExport.folder = tmp_path
    # What generate wrote before it knew: an Interval as a DATETIME, a UUID as a STRING.
    (tmp_path / "loans.json").write_text(json.dumps([
        {"name": "id", "type": "INTEGER", "mode": "REQUIRED"},
        {"name": "loan_period", "type": "DATETIME"},
        {"name": "token", "type": "STRING"},
        {"name": "address", "type": "STRING"},
        {"name": "grid", "type": "INTEGER", "mode": "REPEATED"},
        {"name": "code", "type": "STRING"},
    ]))

    differences = check(LoansExport()).differences

    assert len(differences) == len(UNHELD)
    assert all(difference.startswith(unheld) for difference, unheld in zip(differences, UNHELD))


class ComputedVisitsExport(VisitsExport):
    """Visits with a computed column nobody named."""

    def query(self) -> Select:
        return select(visits.c.id, visits.c.fee * 2)


def test_generate_and_check_refuse_a_column_with_no_name(tmp_path):
    ComputedVisitsExport.folder = tmp_path
    (tmp_path / "visits.json").write_text(json.dumps([{"name": "id", "type": "INTEGER", "mode": "REQUIRED"}]))

    for derive in (generate, check):
        with pytest.raises(SchemaError) as caught:
            derive(ComputedVisitsExport())
        assert str(caught.value) == (
            "table 'visits': query() selects visits.fee * 2 with no name; give each one the name of the "
            "schema field it fills with .label('field_name')")


class ReshapedVisitsExport(VisitsExport):
    """Visits reshaped by to_record: the query's columns are not the record's fields."""

    def to_record(self, row: Row) -> dict:
        return {"id": row.id, "seen_on": row.seen_at.date()}


def test_generate_refuses_a_new_file_for_an_export_that_reshapes_its_rows(tmp_path):
    ReshapedVisitsExport.folder = tmp_path

    with pytest.raises(SchemaError) as caught:
        generate(ReshapedVisitsExport())

    assert str(caught.value).startswith(
        "table 'visits': its records are built by to_record(), so the query's columns are not the record's "
        f"fields and no schema file can be generated from them; write {tmp_path / 'visits.json'} by hand")
    assert not (tmp_path / "visits.json").exists()


def test_generate_updates_the_query_columns_a_reshaping_exports_file_has(tmp_path):
    ReshapedVisitsExport.folder = tmp_path
    (tmp_path / "visits.json").write_text(json.dumps([
        {"name": "id", "type": "STRING", "mode": "REQUIRED", "description": "Visit id."},
        {"name": "seen_on", "type": "DATE", "mode": "REQUIRED"},
    ]))

    fields, notes = generate(ReshapedVisitsExport())

    assert fields == [{"name": "id", "type": "INTEGER", "mode": "REQUIRED", "description": "Visit id."},
                      {"name": "seen_on", "type": "DATE", "mode": "REQUIRED"}]
    assert "field 'seen_on': not derivable (built by to_record())" in notes
    assert "query column 'fee' is not a field of visits.json (to_record() reshapes it)" in notes


def test_a_new_table_is_described_by_the_exports_docstring(export, tmp_path):
    (tmp_path / "visits.json").write_text(json.dumps(derive_fields(export)))

    assert export.table_options.description is None  # not declared: a console edit stays
    assert export.table_options.default_description == "Visits with their clinic."


def test_an_options_file_declares_the_tables_options(export, tmp_path):
    (tmp_path / "visits.json").write_text(json.dumps(derive_fields(export)))
    (tmp_path / "visits.options.json").write_text(json.dumps({
        "description": "Every visit.", "labels": {"owner": "data-eng"},
        "time_partitioning": {"type": "MONTH", "field": "seen_at"}, "clustering": ["clinic_id", "notes"],
        "staging_expiration_hours": 6, "schema_version": 3,
    }))

    assert export.table_options == TableOptions(
        description="Every visit.", default_description="Visits with their clinic.", labels={"owner": "data-eng"},
        partitioning=Partitioning("MONTH", "seen_at"),
        clustering=("clinic_id", "notes"), staging_expiration_hours=6, schema_version=3)


@pytest.mark.parametrize("options, message", [
    ({"labels": {"Owner": "x"}}, "labels: 'Owner' is not a BigQuery label key"),
    ({"labels": {"bq_etl_run": "x"}}, "labels: 'bq_etl_run': labels starting 'bq_etl_' are the exporter's own"),
    ({"labels": {"owner": "Data Eng"}}, "labels: 'owner' has value 'Data Eng'"),
    ({"time_partitioning": {"type": "WEEK"}}, "time_partitioning.type 'WEEK'"),
    ({"time_partitioning": {"field": "notes"}}, "time_partitioning.field 'notes' must be a top-level TIMESTAMP"),
    ({"clustering": ["extra"]}, "clustering column 'extra' must be a top-level"),
    ({"clustering": ["id", "day", "at", "notes", "fee"]}, "key 'clustering' must be a list of one to four"),
    ({"staging_expiration_hours": 0}, "key 'staging_expiration_hours' must be a positive integer, got 0"),
    ({"schema_version": "2"}, "key 'schema_version' must be a positive integer, got '2'"),
    ({"partitioning": {}}, "unknown key 'partitioning'"),
])
def test_a_malformed_options_file_names_the_file_and_key(export, tmp_path, options, message):
    (tmp_path / "visits.options.json").write_text(json.dumps(options))

    with pytest.raises(SchemaError) as caught:
        load_options(tmp_path / "visits.options.json", load_schema_of(export, tmp_path))

    assert f"options file {tmp_path / 'visits.options.json'}: " in str(caught.value)
    assert message in str(caught.value)


def load_schema_of(export, tmp_path):
    (tmp_path / "visits.json").write_text(json.dumps(derive_fields(export)))
    return load_schema(tmp_path / "visits.json")
