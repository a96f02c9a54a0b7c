"""The per-table load lock (redis-py Lock) against a real Redis."""
from __future__ import annotations

import time

import pytest

from bq_etl.errors import LockTimeout
from bq_etl.lock import lock_name, table_lock


def test_a_second_holder_is_refused_while_the_first_holds_it(redis):
    with table_lock(redis, "members", timeout=10, wait=0):
        with pytest.raises(LockTimeout, match="table 'members': another load held its lock"):
            with table_lock(redis, "members", timeout=10, wait=0):
                pass


def test_other_tables_are_not_blocked(redis):
    with table_lock(redis, "members", timeout=10, wait=0):
        with table_lock(redis, "appointments", timeout=10, wait=0) as other:
            assert other.owned()


def test_the_lock_is_renewed_while_held_past_its_timeout(redis):
    with table_lock(redis, "members", timeout=1, wait=0) as lock:
        deadline = time.monotonic() + 2.5  # well past the 1 s timeout
        while time.monotonic() < deadline:
            assert lock.owned(), "the lock expired while its block was still running"
            time.sleep(0.1)
        assert redis.pttl(lock_name("members")) > 0


def test_the_lock_is_released_when_the_block_raises(redis):
    with pytest.raises(RuntimeError):
        with table_lock(redis, "members", timeout=10, wait=0):
            raise RuntimeError("load failed")

    assert redis.exists(lock_name("members")) == 0
