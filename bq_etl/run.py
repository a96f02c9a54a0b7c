"""One export of one table (a run) and what its shards report back."""
from __future__ import annotations

import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any


_RUN_ID_TIME = "%Y%m%dT%H%M%S%fZ"
_RUN_ID = re.compile(r"\d{8}T\d{12}Z-[0-9a-f]{6}")


def new_run_id(now: datetime | None = None) -> str:
    """A run id that sorts by start time (so 'older run' is a string comparison) and is unique."""
    now = now or datetime.now(timezone.utc)
    return f"{now:{_RUN_ID_TIME}}-{secrets.token_hex(3)}"


def run_label(run_id: str) -> str:
    """`run_id` as a BigQuery label value (lowercase letters, digits, `_`, `-`; at most 63).

    Every run id has the same shape (`new_run_id`), its letters `T` and `Z` always at the same
    places, so lowercasing them keeps the order: label values compare as the run ids do.
    """
    if not _RUN_ID.fullmatch(run_id):
        raise ValueError(f"{run_id!r} is not a run id")
    return run_id.lower()


def label_run(label: str) -> str:
    """The run id a `run_label` value was made from."""
    stamp, _, token = label.partition("-")
    return f"{stamp.upper()}-{token}"


def run_started(run_id: str) -> datetime:
    """When the run with this id started (UTC), read from the id."""
    return datetime.strptime(run_id.partition("-")[0], _RUN_ID_TIME).replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Shard:
    """A keyset range of a table's shard key: lower < key <= upper; None means unbounded."""

    index: int
    lower: Any = None
    upper: Any = None


@dataclass(frozen=True)
class ExportRun:
    """One export of one table: its shards' objects live under `prefix` and nowhere else."""

    table: str
    run_id: str
    #: gzip level of the run's files, 0 for none; one run never mixes the two (a load can't).
    gzip_level: int = 0

    @property
    def prefix(self) -> str:
        """The object prefix in the bucket that holds exactly this run's files."""
        return f"{self.table}/{self.run_id}/"

    @property
    def staging_suffix(self) -> str:
        """What names the run's staging table in BigQuery (see `staging_table`)."""
        return self.run_id.replace("-", "_")

    def job_id(self, part: str) -> str:
        """The id of one of the run's RQ jobs (`load`, `shard-00003`), known before it is enqueued."""
        return f"bq-etl-{self.table}-{self.run_id}-{part}"

    @property
    def load_job_id(self) -> str:
        """The id of the run's load job: whether it exists, and its state, say how the run fares."""
        return self.job_id("load")

    def object_name(self, shard: Shard) -> str:
        """Where a shard's file goes; a retried shard writes the same name again."""
        suffix = ".json.gz" if self.gzip_level else ".json"
        return f"{self.prefix}{shard.index:05d}{suffix}"


@dataclass(frozen=True)
class ShardResult:
    """What one exported shard wrote."""

    index: int
    object_name: str
    rows: int
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ShardResult":
        return cls(**data)


@dataclass
class RunSummary:
    """The outcome of a whole run, as the CLI prints it and the load job returns it."""

    table: str
    run_id: str
    shards: int = 0
    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0
    #: "loaded", or "superseded": a newer run had already loaded, this one wrote nothing.
    status: str = "loaded"
    #: The newer run a superseded run found loaded.
    superseded_by: str | None = None
    #: The BigQuery jobs the load ran (staging load, counts, copy), for the run history.
    job_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
