"""Shard planning: keyset ranges of exactly `size` rows, on every database."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from api.db import db
from bq_etl.errors import ShardKeyError
from bq_etl.run import Shard
from bq_etl.shard import plan_shards, shard_query
from api.models import CareTrack

pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgresql", "mariadb"], indirect=True)


def tracks(ids):
    db.session.add_all([CareTrack(id=i, name=f"track {i}") for i in ids])
    db.session.commit()


def plan(size):
    return plan_shards(db.session, select(CareTrack.id, CareTrack.name), CareTrack.id, size, "care_tracks")


def test_shards_hold_size_rows_and_the_last_is_open_ended(app):
    tracks(range(1, 11))

    assert plan(3) == ([Shard(0, None, 3), Shard(1, 3, 6), Shard(2, 6, 9), Shard(3, 9, None)], 10)


def test_no_empty_last_shard_when_the_rows_divide_evenly(app):
    tracks(range(1, 10))

    assert plan(3) == ([Shard(0, None, 3), Shard(1, 3, 6), Shard(2, 6, None)], 9)


def test_gaps_in_the_key_do_not_unbalance_shards(app):
    tracks([2, 4, 8, 16, 32])

    shards, total = plan(2)

    assert shards == [Shard(0, None, 4), Shard(1, 4, 16), Shard(2, 16, None)]
    counts = [len(db.session.execute(shard_query(select(CareTrack.id), CareTrack.id, s)).all()) for s in shards]
    assert counts == [2, 2, 1]


def test_an_empty_table_is_one_open_shard(app):
    assert plan(100) == ([Shard(0, None, None)], 0)


def test_a_shard_is_a_key_range_never_an_offset(app):
    statement = shard_query(select(CareTrack.id), CareTrack.id, Shard(1, 3, 6))
    sql = str(statement.compile(dialect=db.engine.dialect)).upper()

    assert "OFFSET" not in sql and "LIMIT" not in sql
    assert "CARE_TRACKS.ID >" in sql and "CARE_TRACKS.ID <=" in sql


def test_a_shard_key_that_is_null_in_some_rows_stops_the_plan_naming_table_column_and_count(app):
    # NULLs sort first on SQLite and MariaDB and last on PostgreSQL: a NULL boundary would read
    # as no bound, and no range holds a NULL key, so rows would be doubled and lost.
    db.session.add_all([CareTrack(id=i, name=f"track {i}", description=None if i % 2 else f"d{i:02}")
                        for i in range(1, 11)])
    db.session.commit()

    with pytest.raises(ShardKeyError) as raised:
        plan_shards(db.session, select(CareTrack.description, CareTrack.name), CareTrack.description, 2, "care_tracks")

    assert str(raised.value) == (
        "table 'care_tracks': the shard key 'description' is NULL in 5 of the query's 10 rows, which no shard's "
        "key range holds; make the shard key a column that is never NULL (the primary key, say), or leave "
        "those rows out in query() (WHERE description IS NOT NULL)")
    assert not raised.value.retryable
