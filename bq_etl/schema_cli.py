"""`flask export schema generate | check | diff | plan`: a table's schema file against its
query (generate, check) and against the live BigQuery table (diff, plan)."""
from __future__ import annotations

import json
import sys

import click
from flask.cli import AppGroup

from .errors import ExportError
from .extension import state

schema_cli = AppGroup("schema", help="Generate and check schema files; show drift from the live tables.")


def _managers(table: str | None) -> list:
    exporter = state()
    exporter.config
    tables = exporter.tables
    return [tables.get(table)()] if table else [manager() for manager in tables]


def _fail(error: ExportError) -> None:
    raise click.ClickException(str(error)) from error


@schema_cli.command("generate")
@click.argument("table")
@click.option("--stdout", "to_stdout", is_flag=True, help="Print the schema instead of writing the file.")
def generate_command(table: str, to_stdout: bool) -> None:
    """Write TABLE's schema file from its query's columns, keeping hand-written descriptions
    and policy tags."""
    from .schema_generate import generate, schema_file_text

    try:
        manager = _managers(table)[0]
        fields, notes = generate(manager)
    except ExportError as error:
        _fail(error)
    text = schema_file_text(fields)
    for note in notes:
        click.echo(f"note: {table}: {note}", err=True)
    if to_stdout:
        click.echo(text, nl=False)
        return
    manager.schema_path().write_text(text, encoding="utf-8")
    click.echo(f"wrote {manager.schema_path()} ({len(fields)} fields)")


@schema_cli.command("check")
@click.argument("table", required=False)
def check_command(table: str | None) -> None:
    """Check that every schema file (or TABLE's) agrees with its query and that its options are
    valid; print each difference and exit non-zero on any."""
    from .schema_generate import check

    failed = False
    try:
        managers = _managers(table)
    except ExportError as error:
        _fail(error)
    for manager in managers:
        try:
            manager.table_options
            report = check(manager)
        except ExportError as error:
            click.echo(f"{manager.table_name}: {error}")
            failed = True
            continue
        for difference in report.differences:
            click.echo(f"{manager.table_name}: {difference}")
        for note in report.not_derivable:
            click.echo(f"{manager.table_name}: not derivable: {note}")
        if not report.differences:
            click.echo(f"{manager.table_name}: schema file agrees with the query")
        failed = failed or bool(report.differences)
    if failed:
        sys.exit(1)


def _plans(table: str | None) -> list:
    exporter = state()
    exporter.check_cloud()
    plans = []
    for manager in _managers(table):
        plans.append(exporter.warehouse.schema_plan(manager.table_name, manager.schema, manager.table_options,
                                                    str(manager.schema_path())))
    return plans


@schema_cli.command("diff")
@click.argument("table", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
def diff_command(table: str | None, as_json: bool) -> None:
    """Show how the repository's schema and options differ from the live table (every table,
    or TABLE); exit non-zero on any drift."""
    try:
        plans = _plans(table)
    except ExportError as error:
        _fail(error)
    if as_json:
        click.echo(json.dumps([plan.to_json() for plan in plans], indent=2, default=str))
    else:
        for plan in plans:
            if not plan.changes:
                click.echo(f"{plan.table}: in sync")
            for change in plan.changes:
                click.echo(f"{plan.table}: {change.describe()}")
    if any(plan.changes for plan in plans):
        sys.exit(1)


@schema_cli.command("plan")
@click.argument("table", required=False)
def plan_command(table: str | None) -> None:
    """Show what the next run will do to the live table (every table, or TABLE); exit non-zero
    if it would refuse a breaking change."""
    try:
        plans = _plans(table)
    except ExportError as error:
        _fail(error)
    for plan in plans:
        if not plan.changes:
            click.echo(f"{plan.table}: nothing to change; the next run replaces the rows only")
            continue
        for change in plan.changes:
            click.echo(f"{plan.table}: {change.describe()}")
        if not plan.exists:
            continue
        if not plan.allowed:
            click.echo(f"{plan.table}: REFUSED: the next run fails and leaves the table as it is; set "
                       f"\"schema_version\": {plan.live_version + 1} in {plan.options_file} to apply it")
        elif plan.recreate:
            click.echo(f"{plan.table}: the next run makes the table anew (partitioning cannot change in place): "
                       "row access policies are dropped; labels, descriptions and policy tags are set again")
        elif plan.breaking:
            click.echo(f"{plan.table}: the next run replaces the table's schema (copy with WRITE_TRUNCATE): "
                       "row access policies are dropped; labels, descriptions and policy tags are set again")
        else:
            click.echo(f"{plan.table}: the next run applies these in place and keeps everything else")
    if any(not plan.allowed for plan in plans):
        sys.exit(1)
