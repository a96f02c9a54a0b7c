"""An export whose schema file is not written yet (test_config.py): what a new table looks like
before `flask export schema generate`."""
from __future__ import annotations

from api.tests.fault_exports import TracksExport


class UnwrittenSchemaTracksExport(TracksExport):
    """Care tracks, their schema file not written yet."""

    table_name = "unwritten_tracks"
    schema_file = "unwritten_tracks.json"
