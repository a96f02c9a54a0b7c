"""The demo clinic app, for `flask ...` run from the repository root with no FLASK_APP set (Flask
looks for a `wsgi.py`): after `make demo`, `flask export list` and the other commands see the
demo's database (.demo/clinic.db) and settings. Variables that are set win."""
import os

from api import create_app
from api.demo.run import DEMO_SETTINGS, WORK_DIR

os.environ.setdefault("DATABASE_URL", f"sqlite:///{WORK_DIR / 'clinic.db'}")
for key, value in DEMO_SETTINGS.items():
    os.environ.setdefault(key, value)

app = create_app()
