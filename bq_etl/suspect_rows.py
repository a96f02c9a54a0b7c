"""Suspect rows of a fast path (`postgres_lines`, `mysql_lines`) handed to the Python path: the
one piece both share, so a row the database cannot vouch for gets exactly the Python path's
line, or its error."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from .shard import shard_query

if TYPE_CHECKING:
    from .manager import ExportShardManager
    from .run import Shard


def with_suspects_encoded(manager: ExportShardManager, shard: Shard, chunk: Sequence[Sequence[Any]],
                          suspects: set[int]) -> list[bytes]:
    """The lines of `chunk` (rows of line, key, ...), each suspect row's (by index) made by the
    Python path: read again (on a connection of its own, as `lookup` does: the stream holds the
    session's) and encoded, in key order, so the first violating row raises the encoder's
    RecordError. A row gone since is left out."""
    keys = [chunk[index][1] for index in sorted(suspects)]
    statement = shard_query(manager.query(), manager.key, shard).where(manager.key.in_(keys))
    encoded = manager.lines_by_key(statement)
    return [encoded.get(row[1], b"") if index in suspects else row[0] for index, row in enumerate(chunk)]
