"""Delivering a shard's file to the bucket: the official client against the storage emulator."""
from __future__ import annotations

from bq_etl import storage
from bq_etl.extension import state


def test_a_file_larger_than_the_upload_chunk_arrives_whole(app, monkeypatch):
    """A file above the chunk goes in several resumable requests (each one chunk read into
    memory), and the object holds every line in order."""
    monkeypatch.setattr(storage, "UPLOAD_CHUNK_BYTES", 256 * 1024)  # the smallest the API takes
    lines = [b'{"id":%d,"pad":"%s"}\n' % (index, b"x" * 200) for index in range(10_000)]  # about 2.3 MB
    bucket = state().bucket
    bucket.ensure_exists()

    size = bucket.write("t/run1/00000.json", lines)

    assert size == sum(map(len, lines)) > 8 * storage.UPLOAD_CHUNK_BYTES
    assert bucket.client.bucket(bucket.name).blob("t/run1/00000.json").download_as_bytes() == b"".join(lines)
