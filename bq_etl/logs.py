"""Structured log lines: `what key=value ...`, so one run can be followed across workers
(grep its run_id) and the same fields reach log handlers as record attributes."""
from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("bq_etl")


def event(level: int, what: str, **fields: Any) -> None:
    """Log `what` with `fields` (table, run_id, shard, rows, ...) both in the text and as extras."""
    text = " ".join([what, *(f"{key}={value}" for key, value in fields.items())])
    logger.log(level, text, extra={f"bq_etl_{key}": value for key, value in fields.items()})


def configure(level: int = logging.INFO) -> None:
    """Send the exporter's lines to stderr when the host app has not configured logging."""
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)
