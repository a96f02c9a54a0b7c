"""This repository's local services: bq_etl.local's, using the emulators venv that `make venv`
builds (`.venv-emulators`) unless BQ_ETL_EMULATORS names another."""
from __future__ import annotations

import os
from pathlib import Path

from bq_etl.local import (EMULATORS_ENV, LocalCloud, ServiceError, child_process, dev_services, free_port,
                          local_cloud, local_redis, log_tail, wait_until)

os.environ.setdefault(EMULATORS_ENV, str(Path(__file__).resolve().parents[2] / ".venv-emulators"))

__all__ = ["LocalCloud", "ServiceError", "child_process", "dev_services", "free_port", "local_cloud",
           "local_redis", "log_tail", "wait_until"]
