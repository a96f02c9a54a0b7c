"""How `ExportShardManager.lines` hands a shard's rows to `records` and the encoder: in batches
of FETCH_ROWS where `records` is overridden (one side query per batch), in smaller ones
otherwise, and every row exactly once, in key order."""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import orjson
import pytest
from sqlalchemy import Row

from api.db import db
from bq_etl.manager import ENCODE_ROWS, FETCH_ROWS, ExportShardManager
from bq_etl.run import Shard
from api.models import CareTrack
from api.tests.fault_exports import TracksExport

pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgresql", "mariadb"], indirect=True)

ROWS = FETCH_ROWS + ENCODE_ROWS + 1


class PlainTracksExport(TracksExport):
    """Care tracks, column for column."""

    table_name = "tracks"


class ReshapedTracksExport(PlainTracksExport):
    """Care tracks reshaped row by row."""

    def to_record(self, row: Row) -> dict[str, Any]:
        return {"id": row.id, "name": row.name.upper()}


class BatchedTracksExport(PlainTracksExport):
    """Care tracks reshaped a batch at a time, as an export that looks related rows up would."""

    def __init__(self):
        self.batches: list[int] = []

    def records(self, rows: Sequence[Row]) -> Iterable[dict[str, Any]]:
        self.batches.append(len(rows))
        return [{"id": row.id, "name": row.name.upper()} for row in rows]


@pytest.fixture
def tracks(app):
    db.session.execute(CareTrack.__table__.insert(), [{"id": i, "name": f"t{i}"} for i in range(1, ROWS + 1)])
    db.session.commit()


def records_of(manager: ExportShardManager) -> list[dict[str, Any]]:
    return [orjson.loads(line) for item in manager.lines(Shard(0)) for line in item.splitlines()]


def test_an_overridden_records_gets_batches_of_fetch_rows_for_its_side_queries(tracks):
    manager = BatchedTracksExport()

    records = records_of(manager)

    assert manager.batches == [FETCH_ROWS, ENCODE_ROWS + 1]
    assert records == [{"id": i, "name": f"T{i}"} for i in range(1, ROWS + 1)]


@pytest.mark.parametrize("export, name", [(PlainTracksExport, "t{}"), (ReshapedTracksExport, "T{}")])
def test_every_row_is_written_once_in_key_order_whatever_the_batching(tracks, export, name):
    assert records_of(export()) == [{"id": i, "name": name.format(i)} for i in range(1, ROWS + 1)]
