"""The BigQuery side: datasets, tables and the load that replaces a table from a run's files."""
from __future__ import annotations

import logging
from typing import Callable, Sequence

from google.api_core.exceptions import Conflict, GoogleAPICallError, NotFound, PreconditionFailed
from google.cloud import bigquery
from google.cloud.bigquery import SchemaField
from google.cloud.bigquery.retry import DEFAULT_RETRY, _should_retry

from .errors import LoadError, RowCountMismatch
from .logs import event
from .run import label_run, run_label
from .schema import type_name
from .schema_drift import SchemaPlan, plan_schema_change
from .storage import connection_refused
from .table_options import TableOptions

#: The label on a live table naming the newest run loaded into it (see `mark_loaded`).
RUN_LABEL = "bq_etl_run"
#: The label beside it: how many rows that run loaded (what the shrink guard holds a run to
#: when the table itself holds fewer, as a replace interrupted half way leaves it).
ROWS_LABEL = "bq_etl_rows"


def staging_table(table: str, suffix: str) -> str:
    """The name of the staging table a load of `table` counts its files in."""
    return f"{table}__staging_{suffix}"


#: The retry of `answers`: the client's, but not on a refused connection, so a stopped emulator
#: is reported in a moment instead of after the client's ten minutes.
CHECK_RETRY = DEFAULT_RETRY.with_deadline(30).with_predicate(
    lambda error: _should_retry(error) and not connection_refused(error))


class Warehouse:
    """One BigQuery dataset that exported tables are loaded into."""

    def __init__(self, client: bigquery.Client, dataset: str, emulated: bool = False):
        self.client = client
        self.dataset = dataset
        #: True against the local BigQuery emulator, whose dispositions differ (docs/design.md).
        self.emulated = emulated
        #: The id of every BigQuery job this warehouse started, in order (the loader clears it
        #: before a run and copies it into the run's summary).
        self.job_ids: list[str] = []

    def table_id(self, table: str) -> str:
        """The fully qualified `project.dataset.table` id."""
        return f"{self.client.project}.{self.dataset}.{table}"

    def answers(self) -> None:
        """Ask BigQuery about the dataset, raising what the client raises if it does not answer;
        a refused connection (a stopped emulator) fails at once instead of after minutes of retries."""
        try:
            self.client.get_dataset(f"{self.client.project}.{self.dataset}", timeout=10, retry=CHECK_RETRY)
        except NotFound:
            pass

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
        return self.loaded_mark(table)[0]

    def loaded_mark(self, table: str) -> tuple[str | None, int | None]:
        """The newest run loaded into `table` and the rows it loaded, from its labels (None
        where a label is missing, or the table is)."""
        try:
            labels = self.client.get_table(self.table_id(table)).labels
        except NotFound:
            return None, None
        run, rows = labels.get(RUN_LABEL), labels.get(ROWS_LABEL)
        return (label_run(run) if run else None), (int(rows) if rows and rows.isdigit() else None)

    def mark_loaded(self, table: str, run_id: str, rows: int) -> str:
        """Label `table` as holding `run_id`'s `rows` rows, unless it already names a newer
        run; return the run the label names afterwards. Other labels are kept.

        The update sends the etag of the table it read (If-Match), so on BigQuery two runs
        marking at once cannot both win: the loser reads again and compares again.
        """
        while True:
            live = self.client.get_table(self.table_id(table))
            current = live.labels.get(RUN_LABEL)
            if current and current >= run_label(run_id):
                return label_run(current)
            live.labels = {**live.labels, RUN_LABEL: run_label(run_id), ROWS_LABEL: str(rows)}
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

    def table(self, table: str) -> bigquery.Table | None:
        """The live table's resource (schema, labels, partitioning, ...), or None if it does not exist."""
        try:
            return self.client.get_table(self.table_id(table))
        except NotFound:
            return None

    def schema_plan(self, table: str, schema: Sequence[SchemaField], options: TableOptions | None = None,
                    schema_path: str | None = None) -> SchemaPlan:
        """How the live table differs from `schema` and `options`, and what a run would make of it."""
        return plan_schema_change(table, self.table(table), schema, options or TableOptions(), schema_path)

    def replace(self, table: str, uris: Sequence[str], schema: Sequence[SchemaField], expected_rows: int,
                staging_suffix: str, before_write: Callable[[], None] | None = None,
                options: TableOptions | None = None, schema_path: str | None = None,
                copy_job_id: str | None = None) -> int:
        """Replace the rows of `table` with exactly the rows in `uris`; return the row count loaded.

        The live table's metadata is kept: column descriptions and policy tags, row access
        policies, labels, partitioning and clustering, whatever set them. The repository's
        `options` and the schema's descriptions and policy tags are applied over it.

        First the schema plan (`schema_drift`): a breaking change the options do not allow
        raises BreakingSchemaChange before anything is written. Then the files are loaded into
        a staging table of the target schema, partitioning and clustering, expiring after the
        options' staging expiration, and counted; only when that holds exactly `expected_rows`
        is the live table touched, so a file BigQuery rejects leaves it as it was. Then:

        - no live table: it is created with the declared options, then filled by a copy;
        - additive change: the live table's schema and metadata are patched in place (new
          NULLABLE columns, relaxed modes, descriptions, policy tags, labels, clustering);
        - every run: a copy job with WRITE_TRUNCATE_DATA replaces the rows atomically and keeps
          the table's metadata;
        - an allowed breaking change: a copy job with WRITE_TRUNCATE takes the staging table's
          schema (with the merged descriptions and policy tags), then labels and description
          are patched back; a partitioning change makes the table anew (delete, create with the
          merged metadata, copy), as does any column change on the emulator.

        `before_write` is called immediately before each request that writes the live table
        (create, patch, copy, delete); it raises to abort. When the table is made anew it is
        called once, before the delete: from there on the run must reach its copy, since
        stopping would leave the table missing or empty. The copy job into the live table gets
        `copy_job_id` when given (the loader records it first: see `copy_succeeded`). The live
        schema and count are checked again afterwards, as a tripwire: a failure there is
        raised, but the data is live.
        """
        write = before_write or _nothing
        options = options or TableOptions()
        plan = self.schema_plan(table, schema, options, schema_path)
        plan.require_allowed()
        staging = staging_table(table, staging_suffix)
        try:
            self._stage(staging, uris, plan)
            staged = self.row_count(staging)
            if staged != expected_rows:
                raise RowCountMismatch(
                    f"table {table!r}: the shards wrote {expected_rows} rows but {staged} loaded "
                    f"from {len(uris)} files; the live table was left as it was"
                )
            self._write_live(table, staging, plan, write, copy_job_id)
        finally:
            self.client.delete_table(self.table_id(staging), not_found_ok=True)
        if not self._schema_matches(table, plan.target_schema):
            raise LoadError(f"table {table!r}: after the load its schema is {self.live_schema(table)}, "
                            f"not the schema file's {list(schema)}")
        loaded = self.row_count(table)
        if loaded != expected_rows:
            raise RowCountMismatch(f"table {table!r}: expected {expected_rows} rows after the load, found {loaded}")
        return loaded

    def _write_live(self, table: str, staging: str, plan: SchemaPlan, write: Callable[[], None],
                    job_id: str | None) -> None:
        # BigQuery copies between tables only when their partitioning matches, and the emulator
        # cannot change a live table's columns in place (a WRITE_TRUNCATE copy across a column
        # change fails there, and empties the destination): both make the table anew.
        recreate = plan.exists and (plan.recreate or (self.emulated and plan.shape_changed))
        if recreate:
            # The one window in which the table is missing, then empty: the requests follow back
            # to back, with no check between them (see `replace`). The shrink guard does not
            # trust a table this left behind (loader._check_shrink).
            event(logging.WARNING, "making the live table anew for its schema change", table=table)
            resource = self._declared_table(table, plan)
            write()
            self.client.delete_table(self.table_id(table))
            self.client.create_table(resource)
            self._copy(staging, table, self._keep_metadata, _nothing, job_id)
        elif not plan.exists:
            write()
            self.client.create_table(self._declared_table(table, plan))
            self._copy(staging, table, self._keep_metadata, write, job_id)
        elif plan.breaking:
            # WRITE_TRUNCATE takes the staging table's schema, which already carries the merged
            # descriptions and policy tags; labels and description are table metadata, set after.
            self._copy(staging, table, bigquery.WriteDisposition.WRITE_TRUNCATE, write, job_id)
            self._patch(table, plan, write)
        else:
            if plan.changes:
                self._patch(table, plan, write)
            self._copy(staging, table, self._keep_metadata, write, job_id)

    @property
    def _keep_metadata(self) -> str:
        # BigQuery: WRITE_TRUNCATE_DATA replaces the rows and keeps schema, descriptions, policy
        # tags and row access policies. The emulator appends on it; its WRITE_TRUNCATE keeps them.
        # A plain string: setup.cfg admits google-cloud-bigquery releases without the constant.
        return bigquery.WriteDisposition.WRITE_TRUNCATE if self.emulated else "WRITE_TRUNCATE_DATA"

    def _declared_table(self, table: str, plan: SchemaPlan) -> bigquery.Table:
        resource = bigquery.Table(self.table_id(table), schema=plan.target_schema)
        resource.description = plan.description
        resource.labels = dict(plan.labels)
        resource.time_partitioning = plan.partitioning.to_bigquery() if plan.partitioning else None
        resource.clustering_fields = list(plan.clustering) if plan.clustering else None
        return resource

    def _patch(self, table: str, plan: SchemaPlan, write: Callable[[], None]) -> None:
        resource = self._declared_table(table, plan)
        fields = ["schema", "description", "labels"] + (["clustering_fields"] if plan.clustering else [])
        write()
        try:
            self.client.update_table(resource, fields)
        except GoogleAPICallError as error:
            raise LoadError(f"table {table!r}: applying the schema and options failed: {error}; "
                            f"`flask export schema diff {table}` shows what is left") from error

    def _stage(self, staging: str, uris: Sequence[str], plan: SchemaPlan) -> None:
        from datetime import datetime, timedelta, timezone

        self.client.delete_table(self.table_id(staging), not_found_ok=True)
        resource = bigquery.Table(self.table_id(staging), schema=plan.target_schema)
        resource.time_partitioning = plan.partitioning.to_bigquery() if plan.partitioning else None
        resource.clustering_fields = list(plan.clustering) if plan.clustering else None
        resource.expires = datetime.now(timezone.utc) + timedelta(hours=plan.staging_expiration_hours)
        self.client.create_table(resource)
        self._load(staging, uris, plan.target_schema)

    def copy_succeeded(self, job_id: str) -> bool:
        """Whether the copy job `job_id` exists and completed without error (then its rows are
        in its destination, or were, until a later write)."""
        try:
            job = self.client.get_job(job_id)
        except NotFound:
            return False
        return job.state == "DONE" and job.error_result is None

    def _copy(self, source: str, destination: str, disposition: str, write: Callable[[], None],
              job_id: str | None = None) -> None:
        config = bigquery.CopyJobConfig(write_disposition=disposition,
                                        create_disposition=bigquery.CreateDisposition.CREATE_NEVER)
        write()
        try:
            try:
                job = self.client.copy_table(self.table_id(source), self.table_id(destination), job_config=config,
                                             job_id=job_id)
            except Conflict:
                if job_id is None:
                    raise
                # The client retried an insert that had reached BigQuery: the job is this one.
                job = self.client.get_job(job_id)
            self.job_ids.append(job.job_id)
            job.result()
        except GoogleAPICallError as error:
            raise LoadError(f"replacing table {destination!r} from {source!r} failed: {error}") from error

    def _load(self, table: str, uris: Sequence[str], schema: Sequence[SchemaField]) -> None:
        # Into the freshly made, empty staging table: WRITE_EMPTY fails rather than mixing runs.
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
            write_disposition=bigquery.WriteDisposition.WRITE_EMPTY,
            create_disposition=bigquery.CreateDisposition.CREATE_NEVER,
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


def _nothing() -> None:
    """The default `before_write`: nothing to check."""


def _shape(fields: Sequence[SchemaField]) -> list[tuple]:
    """Names, types and modes, nested; what must match between the live table and the file."""
    return [(f.name.lower(), type_name(f.field_type), f.mode or "NULLABLE", _shape(f.fields))
            for f in fields]
