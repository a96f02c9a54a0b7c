"""What an app's exports need to exist before the first run: the sync bucket and the dataset."""
from __future__ import annotations

from .extension import ExporterState


def provision(exporter: ExporterState) -> list[str]:
    """Create the bucket and the dataset where missing (idempotent); return one line per thing
    saying whether it was created or already there."""
    bucket = exporter.bucket
    warehouse = exporter.warehouse
    bucket_done = "created" if bucket.ensure_exists() else "exists"
    dataset_done = "created" if warehouse.ensure_dataset() else "exists"
    return [f"bucket {bucket.name}: {bucket_done}",
            f"dataset {warehouse.client.project}.{warehouse.dataset}: {dataset_done}"]
