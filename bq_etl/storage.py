"""The bucket a run's shard files are delivered to (Google Cloud Storage)."""
from __future__ import annotations

import gzip
import shutil
import tempfile
from typing import Iterable

from google.api_core.exceptions import Forbidden, GoogleAPICallError, NotFound
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY, _should_retry

from .errors import StorageError

#: Lines are buffered in memory up to this size before spilling to a temporary file, so a
#: shard's memory stays flat however large the shard is.
SPOOL_BYTES = 1024 * 1024
#: Lines are joined into writes of about this size.
_WRITE_BYTES = 512 * 1024
#: A file larger than this is uploaded in requests of this size (resumable), each read from the
#: spool file into memory: without it the client reads up to 100 MiB at once, the whole of a
#: shard's file, which made most of a worker's peak memory.
UPLOAD_CHUNK_BYTES = 8 * 1024 * 1024


def connection_refused(error: BaseException) -> bool:
    """Whether `error` comes from a refused connection: nothing listens at the address (a stopped
    emulator), which waiting will not change."""
    seen: set[int] = set()
    pending: list[object] = [error]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return True
        # requests wraps urllib3's MaxRetryError (in args), whose `reason` wraps the socket's error.
        pending += [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args[:1]]
    return False


def _retryable(error: BaseException) -> bool:
    return _should_retry(error) and not connection_refused(error)


#: The start-up check's retry: the client's, but not on a refused connection, so a stopped
#: emulator is reported in a moment instead of after the back-off's 15 s.
CHECK_RETRY = DEFAULT_RETRY.with_deadline(30).with_predicate(_retryable)
#: The retry of a run's clean-up (listing and deleting its files): the client's, but not on a
#: refused connection. A clean-up that fails leaves the files to the sweep, so waiting out the
#: client's two minutes for a storage service that is down only delays the run's end.
CLEANUP_RETRY = DEFAULT_RETRY.with_predicate(_retryable)


class Bucket:
    """Writes, lists and deletes objects in the sync bucket."""

    def __init__(self, client: storage.Client, name: str):
        self.client = client
        self.name = name
        self._bucket = client.bucket(name)

    def uri(self, object_name: str) -> str:
        """The gs:// URI of an object, as a BigQuery load job names it."""
        return f"gs://{self.name}/{object_name}"

    def write(self, object_name: str, lines: Iterable[bytes], gzip_level: int = 0) -> int:
        """Write `lines` to `object_name` (replacing it) and return the bytes stored.

        Nothing is uploaded until every line has been produced: a shard that fails half way
        leaves no partial object behind.
        """
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
            if gzip_level:
                with gzip.GzipFile(fileobj=spool, mode="wb", compresslevel=gzip_level, mtime=0) as zipped:
                    _write_all(zipped, lines)
            else:
                _write_all(spool, lines)
            size = spool.tell()
            spool.seek(0)
            blob = self._bucket.blob(object_name, chunk_size=UPLOAD_CHUNK_BYTES)
            content_type = "application/gzip" if gzip_level else "application/x-ndjson"
            try:
                blob.upload_from_file(spool, size=size, content_type=content_type, rewind=False)
            except NotFound as error:
                raise self.missing() from error
            except GoogleAPICallError as error:
                raise StorageError(f"uploading {self.uri(object_name)} failed: {error}") from error
        return size

    def exists(self) -> bool:
        """Whether the bucket exists; True also when the credentials may not read bucket metadata
        (a least-privilege account can still write objects)."""
        try:
            return self._bucket.exists(timeout=10, retry=CHECK_RETRY)
        except Forbidden:
            return True

    def answers(self) -> None:
        """Ask Cloud Storage about the bucket, raising what the client raises if it does not answer;
        a refused connection (a stopped emulator) fails at once instead of after minutes of retries."""
        self.client.lookup_bucket(self.name, timeout=10, retry=CHECK_RETRY)

    def missing(self) -> StorageError:
        """The error for a bucket that does not exist: retrying cannot help until it is created."""
        error = StorageError(f"bucket {self.name!r} (ETL_SYNC_BUCKET) does not exist: "
                             "create it with `flask export setup`")
        error.retryable = False
        return error

    def names(self, prefix: str, retry=DEFAULT_RETRY) -> list[str]:
        """Names of the objects under `prefix`, sorted."""
        return sorted(blob.name for blob in self.client.list_blobs(self.name, prefix=prefix, retry=retry))

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix`; return how many there were. A refused connection
        fails at once (`CLEANUP_RETRY`): whatever is left, the sweep removes."""
        names = self.names(prefix, retry=CLEANUP_RETRY)
        for name in names:
            self._bucket.blob(name).delete(retry=CLEANUP_RETRY)
        return len(names)

    def ensure_exists(self) -> bool:
        """Create the bucket if it is missing (emulators and first deployments start empty);
        True if it was created."""
        if self.client.lookup_bucket(self.name) is not None:
            return False
        self.client.create_bucket(self.name)
        return True


def _write_all(out, lines: Iterable[bytes]) -> None:
    # Joining in batches keeps the number of write calls (the hot path's cost) low. Batches are
    # cut by size: an item may be one line or a chunk of thousands.
    batch: list[bytes] = []
    size = 0
    for line in lines:
        batch.append(line)
        size += len(line)
        if size >= _WRITE_BYTES:
            out.write(b"".join(batch))
            batch.clear()
            size = 0
    if batch:
        out.write(b"".join(batch))
