"""A Cloud Storage stand-in for case 3, which is the shard path "without the network": the
exporter's own `Bucket.write` (line batching, gzip, the spool file) runs unchanged, and the
upload reads the spooled file to its end, as the client would to send it, and keeps only its
size. (Copying it into another file instead would be a second disk write of every byte, which
the limit case, writing its output once, does not pay.)"""
from __future__ import annotations

from typing import BinaryIO

from bq_etl.storage import Bucket

_READ_CHUNK = 1024 * 1024


def local_bucket(name: str = "bench") -> Bucket:
    """A `Bucket` whose uploads are read and counted, not stored."""
    return Bucket(DiscardingStorageClient(), name)  # type: ignore[arg-type]


class UploadSizeMismatch(RuntimeError):
    """The spooled file held other than the bytes `Bucket.write` said it wrote."""


class DiscardingStorageClient:
    """The one call `Bucket.write` makes on a storage client: `bucket(name)`."""

    def bucket(self, name: str) -> "_Bucket":
        return _Bucket()


class _Bucket:
    def blob(self, name: str, chunk_size: int | None = None) -> "_Blob":
        return _Blob(name, chunk_size or _READ_CHUNK)


class _Blob:
    def __init__(self, name: str, chunk_size: int):
        self.name = name
        self.chunk_size = chunk_size  # as the client does: one request's bytes read at a time

    def upload_from_file(self, file_obj: BinaryIO, size: int | None = None,
                         content_type: str | None = None, rewind: bool = False) -> None:
        """Read what `Bucket.write` spooled, as the upload would send it."""
        if rewind:
            file_obj.seek(0)
        sent = 0
        while chunk := file_obj.read(self.chunk_size):
            sent += len(chunk)
        if size is not None and sent != size:
            raise UploadSizeMismatch(f"{self.name}: {sent} bytes spooled, {size} announced")
