"""The per-table Redis lock that keeps two loads of one table from running at once."""
from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from typing import Iterator

from redis import Redis
from redis.exceptions import LockError, RedisError
from redis.lock import Lock

from .errors import LockTimeout
from .logs import event


def lock_name(table: str) -> str:
    """The Redis key of a table's load lock."""
    return f"bq-etl:lock:{table}"


@contextmanager
def table_lock(redis: Redis, table: str, timeout: int, wait: int) -> Iterator[Lock]:
    """Hold `table`'s load lock for the duration of the block.

    The lock expires `timeout` seconds after its last renewal, so a crashed loader frees it;
    while the block runs a background thread renews it every `timeout / 3` seconds, so a long
    load keeps it; while Redis does not answer it goes on trying (a Redis restarted with its data
    still holds the lock). Waits at most `wait` seconds for another holder, then raises
    LockTimeout.
    """
    lock = redis.lock(lock_name(table), timeout=timeout, blocking_timeout=wait, thread_local=False)
    if not lock.acquire():
        raise LockTimeout(f"table {table!r}: another load held its lock for over {wait} s; try again later")
    stop = threading.Event()
    keeper = threading.Thread(target=_keep, args=(lock, timeout, stop), name=f"lock-keeper:{table}", daemon=True)
    keeper.start()
    try:
        yield lock
    finally:
        stop.set()
        keeper.join()
        if lock.owned():
            lock.release()


def _keep(lock: Lock, timeout: int, stop: threading.Event) -> None:
    failing = False
    while not stop.wait(timeout / 10 if failing else timeout / 3):
        try:
            lock.extend(timeout, replace_ttl=True)
        except LockError as error:
            # The lock expired or another holder has it: the holder checks `owned()` before it
            # writes; say why it will fail.
            event(logging.ERROR, "table lock lost while loading", lock=lock.name, error=repr(error))
            return
        except RedisError as error:
            # Redis unreachable (restarting, failing over): the lock may still be ours when it
            # answers again, so keep trying, more often, to renew it before its TTL runs out;
            # only Redis can say it is lost (LockError above).
            if not failing:
                event(logging.WARNING, "could not renew the table lock; trying again", lock=lock.name,
                      error=repr(error))
            failing = True
        else:
            if failing:
                event(logging.WARNING, "table lock renewed again", lock=lock.name)
            failing = False
