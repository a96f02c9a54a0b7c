"""Structured log lines: `what key=value ...`, so one run can be followed across workers
(grep its run_id) and the same fields reach log handlers as record attributes."""
from __future__ import annotations

import logging
from typing import Any

from .config import mask_secrets

logger = logging.getLogger("bq_etl")


def event(level: int, what: str, **fields: Any) -> None:
    """Log `what` with `fields` (table, run_id, shard, rows, ...) both in the text and as extras;
    URL passwords in either are masked."""
    fields = {key: mask_secrets(value) if isinstance(value, str) else value for key, value in fields.items()}
    text = mask_secrets(" ".join([what, *(f"{key}={value}" for key, value in fields.items())]))
    logger.log(level, text, extra={f"bq_etl_{key}": value for key, value in fields.items()})


def describe(error: BaseException) -> str:
    """An error as one line for a log or a message: its class name and its first line."""
    lines = str(error).strip().splitlines()
    return mask_secrets(f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": "))


def configure(level: int = logging.INFO) -> None:
    """Send the exporter's lines to stderr when the host app has not configured logging."""
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)
