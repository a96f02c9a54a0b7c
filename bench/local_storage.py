"""A local disk in place of the Cloud Storage client, so the exporter's own `Bucket.write`
(line batching, gzip, spooling) runs unchanged and only the network is left out."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import BinaryIO

from api.events_join_data.storage import Bucket

_COPY_CHUNK = 1024 * 1024


def local_bucket(root: Path, name: str = "bench") -> Bucket:
    """A `Bucket` whose objects are the files under `root/name`."""
    return Bucket(LocalStorageClient(root), name)  # type: ignore[arg-type]


class LocalStorageClient:
    """The one call `Bucket` makes on a storage client: `bucket(name)`."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def bucket(self, name: str) -> "_LocalBucket":
        return _LocalBucket(self.root / name)


class _LocalBucket:
    def __init__(self, path: Path):
        self.path = path

    def blob(self, name: str) -> "_LocalBlob":
        return _LocalBlob(self.path / name)


class _LocalBlob:
    def __init__(self, path: Path):
        self.path = path

    def upload_from_file(self, file_obj: BinaryIO, size: int | None = None,
                         content_type: str | None = None, rewind: bool = False) -> None:
        """Copy what `Bucket.write` spooled into the object's file, as the upload would send it."""
        if rewind:
            file_obj.seek(0)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("wb") as out:
            shutil.copyfileobj(file_obj, out, _COPY_CHUNK)
