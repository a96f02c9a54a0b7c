"""`make demo` as a user runs it: `python -m api.demo` end to end, in a folder of the test's own."""
from __future__ import annotations

import os
import re
import subprocess
import sys

from api.tests.conftest import ROOT


def test_the_demo_loads_every_table_and_shows_its_status(tmp_path):
    env = {key: value for key, value in os.environ.items()
           if key not in ("REDIS_URL", "DATABASE_URL", "FLASK_APP") and not key.startswith("ETL_")}
    env["BQ_ETL_DEMO_DIR"] = str(tmp_path)

    done = subprocess.run([sys.executable, "-m", "api.demo", "--rows", "40", "--workers", "1", "--timeout", "300"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)

    assert done.returncode == 0, done.stdout + done.stderr
    summary = {line.split()[0]: line.split() for line in done.stdout.splitlines()
               if re.match(r"^[a-z_]+ +(midnight|every_five_hours|every_three_hours|hourly) +\d", line)}
    assert sorted(summary) == ["appointments", "members", "messages", "practitioners", "product_events"]
    assert all(row[-1] == "ok" and row[-2] == row[-3] for row in summary.values()), done.stdout
    status = done.stdout.split("flask export status", 1)[1]
    assert status.count(" fresh ") == 5 and status.count(" loaded") == 5, status
    assert (tmp_path / "clinic.db").exists()
