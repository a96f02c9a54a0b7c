"""The BigQuery side: datasets, tables and the load that replaces a table from a run's files."""
from __future__ import annotations

import logging
from typing import Sequence

from google.api_core.exceptions import GoogleAPICallError, NotFound
from google.cloud import bigquery
from google.cloud.bigquery import SchemaField

from .errors import LoadError, RowCountMismatch
from .logs import event


def staging_table(table: str, suffix: str) -> str:
    """The name of the staging table a load of `table` counts its files in."""
    return f"{table}__staging_{suffix}"


class Warehouse:
    """One BigQuery dataset that exported tables are loaded into."""

    def __init__(self, client: bigquery.Client, dataset: str):
        self.client = client
        self.dataset = dataset
        #: The id of every BigQuery job this warehouse started, in order (the loader clears it
        #: before a run and copies it into the run's summary).
        self.job_ids: list[str] = []

    def table_id(self, table: str) -> str:
        """The fully qualified `project.dataset.table` id."""
        return f"{self.client.project}.{self.dataset}.{table}"

    def ensure_dataset(self) -> bool:
        """Create the dataset if it does not exist; True if it was created."""
        try:
            self.client.get_dataset(f"{self.client.project}.{self.dataset}")
            return False
        except NotFound:
            self.client.create_dataset(f"{self.client.project}.{self.dataset}", exists_ok=True)
            return True

    def tables(self) -> list[str]:
        """The names of the dataset's tables; none if the dataset does not exist yet."""
        try:
            return [item.table_id for item in self.client.list_tables(f"{self.client.project}.{self.dataset}")]
        except NotFound:
            return []

    def drop(self, table: str) -> None:
        """Delete a table of the dataset, if it exists."""
        self.client.delete_table(self.table_id(table), not_found_ok=True)

    def row_count(self, table: str) -> int:
        """COUNT(*) of a table, by query (table metadata can lag behind a load)."""
        sql = f"SELECT COUNT(*) AS n FROM `{self.table_id(table)}`"
        job = self.client.query(sql)
        self.job_ids.append(job.job_id)
        return int(next(iter(job.result())).n)

    def live_schema(self, table: str) -> list[SchemaField] | None:
        """The schema BigQuery holds for a table, or None if the table does not exist."""
        try:
            return list(self.client.get_table(self.table_id(table)).schema)
        except NotFound:
            return None

    def replace(self, table: str, uris: Sequence[str], schema: Sequence[SchemaField], expected_rows: int,
                staging_suffix: str) -> int:
        """Replace `table` with exactly the rows in `uris`; return the row count loaded.

        The files are loaded into a staging table and counted; only when that holds exactly
        `expected_rows` is the live table replaced, so a file BigQuery rejects, or files that
        hold other than the rows the shards wrote, leave the live table as it was. The replace
        is a copy job (WRITE_TRUNCATE: atomic, and no second read of the files) when the live
        table is missing (a first run) or its schema matches the file; after a schema change it
        is a load of the same, proven files, which takes the new schema. The live schema and
        count are checked again afterwards, as a tripwire: a failure there is raised, but the
        data is live.
        """
        staging = staging_table(table, staging_suffix)
        try:
            self._load(staging, uris, schema)
            staged = self.row_count(staging)
            if staged != expected_rows:
                raise RowCountMismatch(
                    f"table {table!r}: the shards wrote {expected_rows} rows but {staged} loaded "
                    f"from {len(uris)} files; the live table was left as it was"
                )
            live = self.live_schema(table)
            if live is None or _shape(live) == _shape(schema):
                # A copy creates a missing table with the staging table's (the file's) schema.
                self._copy(staging, table)
            else:
                self._load(table, uris, schema)
                if not self._schema_matches(table, schema):
                    # BigQuery takes the load's schema on WRITE_TRUNCATE; a store that kept the
                    # old one (the local emulator does) gets the table made anew.
                    event(logging.WARNING, "live table kept its old schema; recreating it", table=table)
                    self.client.delete_table(self.table_id(table))
                    self._load(table, uris, schema)
        finally:
            self.client.delete_table(self.table_id(staging), not_found_ok=True)
        if not self._schema_matches(table, schema):
            raise LoadError(f"table {table!r}: after the load its schema is {self.live_schema(table)}, "
                            f"not the schema file's {list(schema)}")
        loaded = self.row_count(table)
        if loaded != expected_rows:
            raise RowCountMismatch(f"table {table!r}: expected {expected_rows} rows after the load, found {loaded}")
        return loaded

    def _copy(self, source: str, destination: str) -> None:
        config = bigquery.CopyJobConfig(write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE)
        try:
            job = self.client.copy_table(self.table_id(source), self.table_id(destination), job_config=config)
            self.job_ids.append(job.job_id)
            job.result()
        except GoogleAPICallError as error:
            raise LoadError(f"replacing table {destination!r} from {source!r} failed: {error}") from error

    def _load(self, table: str, uris: Sequence[str], schema: Sequence[SchemaField]) -> None:
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
            create_disposition=bigquery.CreateDisposition.CREATE_IF_NEEDED,
            schema=list(schema),
        )
        try:
            job = self.client.load_table_from_uri(list(uris), self.table_id(table), job_config=config)
            self.job_ids.append(job.job_id)
            job.result()
        except GoogleAPICallError as error:
            raise LoadError(f"loading table {table!r} from {len(uris)} files failed: {error}") from error

    def _schema_matches(self, table: str, schema: Sequence[SchemaField]) -> bool:
        live = self.live_schema(table) or []
        return _shape(live) == _shape(schema)


_ALIASES = {"INT64": "INTEGER", "FLOAT64": "FLOAT", "BOOL": "BOOLEAN", "STRUCT": "RECORD"}


def _shape(fields: Sequence[SchemaField]) -> list[tuple]:
    """Names, types and modes, nested; what must match between the live table and the file."""
    return [(f.name.lower(), _ALIASES.get(f.field_type, f.field_type), f.mode or "NULLABLE", _shape(f.fields))
            for f in fields]
