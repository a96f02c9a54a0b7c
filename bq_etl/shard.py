"""Splitting a table into shards by keyset ranges of its shard key (never OFFSET)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.exc import CompileError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import Label

from .errors import ShardKeyError
from .run import Shard


def plan_shards(session: Session, query: Select, key: Any, size: int, table: str) -> tuple[list[Shard], int]:
    """Cut `query` into ranges of `size` rows by `key`; return the shards and the row count.

    One pass over the key's index numbers the keys; every `size`-th key closes a shard. The last
    shard is open-ended, so rows added after planning still land in this run. A NULL key is a
    ShardKeyError: no range holds its row, and a NULL boundary would read as no bound at all
    (a shard of every row past its lower bound), so rows would be lost and others doubled.
    """
    keys = query.with_only_columns(key).subquery()
    key_column = keys.c[0]
    total, keyed = session.execute(select(func.count(), func.count(key_column)).select_from(keys)).one()
    if keyed < total:
        raise ShardKeyError(table, getattr(key, "key", None) or key_column.name, total - keyed, total)
    numbered = select(
        key_column.label("k"), func.row_number().over(order_by=key_column).label("n")
    ).subquery()
    boundaries = list(
        session.execute(
            select(numbered.c.k).where(numbered.c.n % size == 0).order_by(numbered.c.k)
        ).scalars()
    )
    if boundaries and total % size == 0:
        # The last boundary is the table's last key: without this the final shard is empty.
        boundaries.pop()
    lowers = [None, *boundaries]
    uppers = [*boundaries, None]
    return [Shard(i, lo, hi) for i, (lo, hi) in enumerate(zip(lowers, uppers))], total


def shard_query(query: Select, key: Any, shard: Shard) -> Select:
    """The rows of one shard, in key order, each column named by its key (see `keyed_columns`)."""
    query = keyed_columns(query)
    if shard.lower is not None:
        query = query.where(key > shard.lower)
    if shard.upper is not None:
        query = query.where(key <= shard.upper)
    return query.order_by(key)


def unnamed_columns(query: Select) -> list[str]:
    """The SQL of each column `query` selects with no name of its own (an expression without
    `.label()`, which SQLAlchemy names `_no_label`): no record key or schema field can name it."""
    return [_sql(column) for column in query.selected_columns if getattr(column, "_proxy_key", "") is None]


def _sql(column: Any) -> str:
    # With its values written in, as the user wrote them, where SQLAlchemy can render them.
    try:
        return str(column.compile(compile_kwargs={"literal_binds": True}))
    except (CompileError, NotImplementedError):
        return str(column)


def unnamed_columns_message(table: str, unnamed: list[str]) -> str:
    """What to do about `unnamed` columns of `table`'s query."""
    return (f"table {table!r}: query() selects {'; '.join(unnamed)} with no name; give each one the name of "
            f"the schema field it fills with .label('field_name')")


def keyed_columns(query: Select) -> Select:
    """`query` with each selected column labelled with its key where the key is not already the
    name a result gives it: records name a column by its key (`Book.extra`, mapped to a database
    column named `metadata`, is `extra`), as `schema generate` names its field, whichever
    connection runs the query (a Core connection would name it `metadata`)."""
    columns = list(query.selected_columns.items())
    if all(isinstance(column, Label) or getattr(column, "name", None) == key for key, column in columns):
        return query
    return query.with_only_columns(
        *[column if isinstance(column, Label) or getattr(column, "name", None) == key else column.label(key)
          for key, column in columns],
        maintain_column_froms=True,
    )
