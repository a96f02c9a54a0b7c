"""The `flask demo` command group: tooling to try the app and its exports on synthetic data."""
from __future__ import annotations

import time

import click
from flask.cli import AppGroup

from api.demo.seed import SeedError, seed

demo_cli = AppGroup("demo", help="Demo data for the clinic app.")
"""The `demo` CLI group; create_app registers it on `app.cli`."""


@demo_cli.command("seed")
@click.option(
    "--rows",
    type=click.IntRange(min=1),
    default=1_000,
    show_default=True,
    help="Number of appointments; every other table scales with it.",
)
@click.option("--drop", is_flag=True, help="Drop the clinic tables first (their rows are lost).")
def seed_command(rows: int, drop: bool) -> None:
    """Create the clinic tables and fill them with deterministic synthetic data."""
    started = time.perf_counter()
    try:
        counts = seed(rows, drop=drop)
    except SeedError as error:
        raise click.ClickException(str(error)) from error
    width = max(map(len, counts))
    for table, count in counts.items():
        click.echo(f"{table:<{width}}  {count:>10,}")
    click.echo(f"{'total':<{width}}  {sum(counts.values()):>10,}  ({time.perf_counter() - started:.1f}s)")
