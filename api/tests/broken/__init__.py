"""An export whose schema file is malformed, for the start-up checks' tests."""
from __future__ import annotations

from api.tests.fault_exports import TracksExport


class BrokenSchemaTracksExport(TracksExport):
    """Care tracks with a schema file that is not valid JSON."""

    table_name = "broken_schema_tracks"
    schema_file = "broken.json"
