"""An export whose shard key may be NULL (care tracks keyed by their nullable description): what
the planner must refuse rather than double or lose rows (test_cli.py)."""
from __future__ import annotations

from sqlalchemy import Select, select

from api.models import CareTrack
from bq_etl.cadence import Cadence
from bq_etl.manager import ExportShardManager


class TrackDescriptionsExport(ExportShardManager):
    """Care tracks keyed by description."""

    table_name = "track_descriptions"
    schema_file = "track_descriptions.json"
    cadence = Cadence.MIDNIGHT
    shard_key = CareTrack.description
    shard_size = 2

    def query(self) -> Select:
        return select(CareTrack.description, CareTrack.name)
