"""BaseExportShardManagerTest: what a table's tests subclass to assert on its exported records."""
from __future__ import annotations

from typing import Any, ClassVar, Iterable

import orjson
import pytest

from .manager import ExportShardManager
from .run import ExportRun, new_run_id


class BaseExportShardManagerTest:
    """Base class for pytest classes testing one export.

    Set `manager_class`; seed the database; call `self.export()` to run every shard of the
    export and get the records it delivered, parsed back from the NDJSON lines exactly as
    BigQuery would read them. Only `ExportShardManager.deliver` is replaced (records are
    captured instead of written to the bucket); querying, sharding, serializing and schema
    validation are the real ones. Needs an `app` fixture that pushes an app context.
    """

    manager_class: ClassVar[type[ExportShardManager]]

    @pytest.fixture(autouse=True)
    def _capture_deliveries(self, app, monkeypatch):
        self.delivered: dict[str, list[dict[str, Any]]] = {}

        def capture(manager, bucket, object_name: str, lines: Iterable[bytes], gzip_level: int) -> int:
            size = 0
            records = []
            for item in lines:  # an item may hold many lines
                size += len(item)
                records.extend(orjson.loads(line) for line in item.splitlines())
            self.delivered[object_name] = records
            return size

        monkeypatch.setattr(self.manager_class, "deliver", capture)

    def export(self, shard_size: int | None = None) -> list[dict[str, Any]]:
        """Export the table now; return its records in shard-key order."""
        manager = self.manager_class()
        if shard_size is not None:
            manager.shard_size = shard_size
        run = ExportRun(manager.table_name, new_run_id())
        shards, _ = manager.plan()
        records: list[dict[str, Any]] = []
        for shard in shards:
            result = manager.export_shard(run, shard, None)
            records.extend(self.delivered[result.object_name])
        return records

    def export_by_key(self, shard_size: int | None = None) -> dict[Any, dict[str, Any]]:
        """Export the table now; return its records by shard key."""
        key = self.manager_class().key_column
        return {record[key]: record for record in self.export(shard_size)}
