"""The BigQuery side: datasets, tables and the load that replaces a table from a run's files."""
from __future__ import annotations

import logging
from typing import Callable, Sequence

from google.api_core.exceptions import GoogleAPICallError, NotFound, PreconditionFailed
from google.cloud import bigquery
from google.cloud.bigquery import SchemaField

from .errors import LoadError, RowCountMismatch
from .logs import event
from .run import label_run, run_label

#: The label on a live table naming the newest run loaded into it (see `mark_loaded`).
RUN_LABEL = "bq_etl_run"


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

    def live_rows(self, table: str) -> int | None:
        """The live table's row count, or None if it does not exist.

        By COUNT(*) query, not table metadata: the emulator's metadata lags behind copies, and
        BigQuery answers an unfiltered COUNT(*) from metadata without scanning (0 bytes billed).
        """
        try:
            self.client.get_table(self.table_id(table))
        except NotFound:
            return None
        return self.row_count(table)

    def loaded_run(self, table: str) -> str | None:
        """The newest run loaded into `table`, from its `bq_etl_run` label; None if unlabelled
        or missing. It lives in BigQuery, so it outlives anything Redis loses."""
        try:
            label = self.client.get_table(self.table_id(table)).labels.get(RUN_LABEL)
        except NotFound:
            return None
        return label_run(label) if label else None

    def mark_loaded(self, table: str, run_id: str) -> str:
        """Label `table` as holding `run_id`'s rows, unless it already names a newer run;
        return the run the label names afterwards. Other labels are kept.

        The update sends the etag of the table it read (If-Match), so on BigQuery two runs
        marking at once cannot both win: the loser reads again and compares again.
        """
        while True:
            live = self.client.get_table(self.table_id(table))
            current = live.labels.get(RUN_LABEL)
            if current and current >= run_label(run_id):
                return label_run(current)
            live.labels = {**live.labels, RUN_LABEL: run_label(run_id)}
            try:
                self.client.update_table(live, ["labels"])
                return run_id
            except PreconditionFailed:
                continue  # someone else changed the table's metadata; read it again

    def live_schema(self, table: str) -> list[SchemaField] | None:
        """The schema BigQuery holds for a table, or None if the table does not exist."""
        try:
            return list(self.client.get_table(self.table_id(table)).schema)
        except NotFound:
            return None

    def replace(self, table: str, uris: Sequence[str], schema: Sequence[SchemaField], expected_rows: int,
                staging_suffix: str, before_write: Callable[[], None] | None = None) -> int:
        """Replace `table` with exactly the rows in `uris`; return the row count loaded.

        The files are loaded into a staging table and counted; only when that holds exactly
        `expected_rows` is the live table replaced, so a file BigQuery rejects, or files that
        hold other than the rows the shards wrote, leave the live table as it was. The replace
        is a copy job (WRITE_TRUNCATE: atomic, and no second read of the files) when the live
        table is missing (a first run) or its schema matches the file; after a schema change it
        is a load of the same, proven files, which takes the new schema. The live schema and
        count are checked again afterwards, as a tripwire: a failure there is raised, but the
        data is live.

        `before_write` is called immediately before each request that writes the live table;
        it raises to abort the replace (the loader's last-moment fencing check).
        """
        check = before_write or (lambda: None)
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
                check()
                self._copy(staging, table)
            else:
                check()
                self._load(table, uris, schema)
                if not self._schema_matches(table, schema):
                    # BigQuery takes the load's schema on WRITE_TRUNCATE; a store that kept the
                    # old one (the local emulator does) gets the table made anew.
                    event(logging.WARNING, "live table kept its old schema; recreating it", table=table)
                    check()
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
