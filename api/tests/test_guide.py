"""docs/guides/adding-a-new-table-to-bq.md, followed as written.

The guide's marked code blocks become a package, `guide_tables`, in a temporary folder on
sys.path: the ```python title="export"``` block is its `__init__.py`, the ```json
title="schema"``` block is `schemas/care_tracks.json` (where `ExportShardManager.schema_path()`
looks: beside the module defining the export) and the ```python title="test"``` block is
`test_care_tracks.py`. The guide adds the export to the shipped module; here it is a module of
its own, listed in ETL_EXPORT_MODULES (the guide's "A table in a module of its own"), so the
shipped module stays as it is. The one line changed on the way is the test's import of the
export, which names the module the export lives in.

The guide's test class is imported here, so pytest collects it and runs it in this session
with the suite's real fixtures, exactly as it would run from api/tests (its file is named
test_*.py, so pytest also rewrites its asserts). The tests below check the rest: `flask export
list` finds the table, and `flask export run care_tracks` loads it into the BigQuery emulator.
"""
from __future__ import annotations

import atexit
import importlib
import json
import re
import shutil
import sys
import tempfile
from datetime import date
from pathlib import Path

import pytest

from api.db import db
from bq_etl.extension import state
from api.models import CareTrack, Member, MemberTrack, User

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guides" / "adding-a-new-table-to-bq.md"
PACKAGE = "guide_tables"
SHIPPED_IMPORT = "from api.events_join_data.export_event_join_tables import CareTracksExport"
SHIPPED_TABLES = ["appointments", "members", "messages", "practitioners", "product_events"]


def code_blocks(markdown: str) -> dict[str, str]:
    """The guide's code blocks marked ```lang title="name"```, by name; each name once."""
    blocks: dict[str, str] = {}
    for match in re.finditer(r'^```\w+ title="([^"]+)"\n(.*?)^```$', markdown, re.MULTILINE | re.DOTALL):
        title, code = match.groups()
        if title in blocks:
            raise ValueError(f"{GUIDE}: two code blocks titled {title!r}")
        blocks[title] = code
    missing = {"export", "schema", "test"} - set(blocks)
    if missing:
        raise ValueError(f"{GUIDE}: no code block titled {', '.join(sorted(missing))}")
    return blocks


def write_package(root: Path, blocks: dict[str, str]) -> Path:
    """Write the guide's blocks as the package `guide_tables` under `root`; return its folder."""
    if blocks["test"].count(SHIPPED_IMPORT) != 1:
        raise ValueError(f"{GUIDE}: the test block must import the export with {SHIPPED_IMPORT!r}")
    package = root / PACKAGE
    (package / "schemas").mkdir(parents=True)
    (package / "__init__.py").write_text(blocks["export"], encoding="utf-8")
    (package / "schemas" / "care_tracks.json").write_text(blocks["schema"], encoding="utf-8")
    if "options" in blocks:
        (package / "schemas" / "care_tracks.options.json").write_text(blocks["options"], encoding="utf-8")
    (package / "test_care_tracks.py").write_text(
        blocks["test"].replace(SHIPPED_IMPORT, f"from {PACKAGE} import CareTracksExport"), encoding="utf-8"
    )
    return package


# At import, because pytest collects the guide's test class from this module's namespace.
_ROOT = Path(tempfile.mkdtemp(prefix="bq-etl-guide-"))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)
BLOCKS = code_blocks(GUIDE.read_text(encoding="utf-8"))
PACKAGE_DIR = write_package(_ROOT, BLOCKS)
sys.path.insert(0, str(_ROOT))

TestCareTracksExport = importlib.import_module(f"{PACKAGE}.test_care_tracks").TestCareTracksExport

# Every app in this module, the guide's test class's included, exports the guide's table too.
pytestmark = pytest.mark.export_modules(PACKAGE)


def test_list_shows_the_guides_table_with_its_cadence_and_schema_file(app):
    result = app.test_cli_runner().invoke(args=["export", "list"])

    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[1:] for line in result.output.splitlines()[1:]}
    assert sorted(rows) == sorted([*SHIPPED_TABLES, "care_tracks"])
    assert rows["care_tracks"] == ["midnight", str(PACKAGE_DIR / "schemas" / "care_tracks.json")]


def test_run_loads_every_care_track_with_its_active_members_into_bigquery(app):
    dana, eve = (Member(user=User(email=f"{name}@example.com", first_name=name), date_of_birth=date(1985, 2, 1),
                        timezone="America/Chicago") for name in ("dana", "eve"))
    postpartum = CareTrack(name="postpartum")
    menopause = CareTrack(name="menopause", description="Symptoms, sleep and hormone therapy")
    db.session.add_all([
        postpartum, menopause,
        MemberTrack(member=dana, care_track=postpartum, started_on=date(2024, 4, 2)),
        MemberTrack(member=eve, care_track=postpartum, started_on=date(2024, 5, 6), ended_on=date(2024, 9, 1)),
        MemberTrack(member=eve, care_track=menopause, started_on=date(2024, 9, 2)),
        MemberTrack(member=dana, care_track=menopause, started_on=date(2024, 10, 7)),
    ])
    db.session.commit()

    result = app.test_cli_runner().invoke(args=["export", "run", "care_tracks"])

    assert result.exit_code == 0, result.output
    assert "care_tracks: loaded, 2 rows, 1 shards" in result.output
    warehouse = state().warehouse
    loaded = warehouse.client.query(
        f"SELECT id, name, description, active_members FROM `{warehouse.table_id('care_tracks')}`"
    ).result()
    assert {row.id: (row.name, row.description, row.active_members) for row in loaded} == {
        postpartum.id: ("postpartum", None, 1),
        menopause.id: ("menopause", "Symptoms, sleep and hormone therapy", 2),
    }


def test_the_schema_steps_generate_check_create_and_change_the_table(app):
    """Step 3b and "Changing the table later": generate, check, the options on the created
    table, and a breaking change refused until schema_version is raised."""
    cli = app.test_cli_runner()
    schema_file = PACKAGE_DIR / "schemas" / "care_tracks.json"
    options_file = PACKAGE_DIR / "schemas" / "care_tracks.options.json"
    db.session.add_all([CareTrack(name="fertility", description="Trying to conceive"),
                        CareTrack(name="menopause", description="Symptoms and sleep")])
    db.session.commit()

    generated = cli.invoke(args=["export", "schema", "generate", "care_tracks", "--stdout"])
    checked = cli.invoke(args=["export", "schema", "check", "care_tracks"])
    first_run = cli.invoke(args=["export", "run", "care_tracks"])

    assert json.loads(generated.output) == json.loads(BLOCKS["schema"])  # descriptions kept
    assert checked.exit_code == 0 and "care_tracks: schema file agrees with the query" in checked.output
    assert first_run.exit_code == 0, first_run.output
    warehouse = state().warehouse
    table = warehouse.client.get_table(warehouse.table_id("care_tracks"))
    declared = json.loads(BLOCKS["options"])
    assert table.description == declared["description"]
    # bq_etl_run, bq_etl_rows: the run that loaded and its rows, for the fence and the shrink
    # guard (docs/reliability.md)
    loaded_rows = re.search(r"loaded, (\d+) rows", first_run.output).group(1)
    assert table.labels == {**declared["labels"], "bq_etl_schema_version": "1",
                            "bq_etl_run": table.labels["bq_etl_run"], "bq_etl_rows": loaded_rows}
    assert f"(run {table.labels['bq_etl_run']})" in first_run.output.lower()
    assert table.clustering_fields == declared["clustering"]

    fields = json.loads(BLOCKS["schema"])
    fields[2]["mode"] = "REQUIRED"  # description: NULLABLE -> REQUIRED, a breaking change
    try:
        schema_file.write_text(json.dumps(fields), encoding="utf-8")
        refused_plan = cli.invoke(args=["export", "schema", "plan", "care_tracks"])
        refused_run = cli.invoke(args=["export", "run", "care_tracks"])
        options_file.write_text(json.dumps({**declared, "schema_version": 2}), encoding="utf-8")
        allowed_plan = cli.invoke(args=["export", "schema", "plan", "care_tracks"])
        migrated = cli.invoke(args=["export", "run", "care_tracks"])
    finally:
        schema_file.write_text(BLOCKS["schema"], encoding="utf-8")
        options_file.write_text(BLOCKS["options"], encoding="utf-8")

    assert refused_plan.exit_code == 1
    assert "BREAKING mode of column description: 'NULLABLE' -> 'REQUIRED'" in refused_plan.output
    assert refused_run.exit_code == 1 and "breaking change" in refused_run.output
    assert allowed_plan.exit_code == 0, allowed_plan.output
    assert migrated.exit_code == 0, migrated.output
    table = warehouse.client.get_table(warehouse.table_id("care_tracks"))
    assert [(f.name, f.mode) for f in table.schema][2] == ("description", "REQUIRED")
    assert table.labels == {**declared["labels"], "bq_etl_schema_version": "2",
                            "bq_etl_run": table.labels["bq_etl_run"], "bq_etl_rows": loaded_rows}
    assert table.description == declared["description"]
