"""Delivering a shard's file to the bucket: the official client against the storage emulator."""
from __future__ import annotations

import pytest
from google.api_core.exceptions import ServiceUnavailable
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage as google_storage

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


def test_the_bucket_check_retries_a_failing_service_but_not_a_refused_connection(monkeypatch):
    """Connection refused means nothing listens (a stopped emulator): retrying for the back-off's
    15 s cannot change that, so the check reports it at once."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:1")  # nothing listens on port 1
    client = google_storage.Client(project="local", credentials=AnonymousCredentials())
    with pytest.raises(Exception) as refused:
        client.bucket("stopped").exists(retry=None)

    assert storage.connection_refused(refused.value)
    assert not storage.CHECK_RETRY._predicate(refused.value)
    assert storage.CHECK_RETRY._predicate(ServiceUnavailable("try again"))
