"""bq-etl in a Flask app other than the clinic, configured through app.config alone."""
from __future__ import annotations

import uuid

from bq_etl.extension import state
from api.tests.other_app import Widget, create_app, db


def test_any_flask_sqlalchemy_app_can_export_its_tables(tmp_path, cloud, redis_url, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", cloud.storage_url)  # read by the Google client itself
    token = uuid.uuid4().hex[:8]
    app = create_app({
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'widgets.db'}",
        "ETL_SYNC_BUCKET": f"widgets-{token}",
        "ETL_BQ_PROJECT": cloud.project,
        "ETL_BQ_DATASET": f"widgets_{token}",
        "ETL_BIGQUERY_API_ENDPOINT": cloud.bigquery_url,
        "REDIS_URL": redis_url,
        "ETL_EXPORT_MODULES": "api.tests.other_app",
    })
    with app.app_context():
        db.create_all()
        db.session.add_all([Widget(id=i, label=f"widget {i}") for i in (1, 2, 3)])
        db.session.commit()
        state().bucket.ensure_exists()

        listed = app.test_cli_runner().invoke(args=["export", "list"])
        ran = app.test_cli_runner().invoke(args=["export", "run", "widgets"])

        assert listed.exit_code == 0 and listed.output.splitlines()[1].split()[:2] == ["widgets", "hourly"]
        assert ran.exit_code == 0, ran.output
        assert "widgets: loaded, 3 rows, 2 shards" in ran.output
        warehouse = state().warehouse
        rows = warehouse.client.query(f"SELECT id, label FROM `{warehouse.table_id('widgets')}` ORDER BY id")
        assert [tuple(r.values()) for r in rows.result()] == [(1, "widget 1"), (2, "widget 2"), (3, "widget 3")]
