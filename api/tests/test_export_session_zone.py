"""The appointments export on a PostgreSQL session in another time zone than UTC.

Only PostgreSQL hands instants back zone-aware, in the session's time zone, so this test runs on
PostgreSQL alone (SQLite and MariaDB hand them back naive, in UTC: test_export_event_join_tables).
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, select

from api.db import db
from api.events_join_data.export_event_join_tables import AppointmentsExport
from api.models import Appointment
from api.tests.test_export_event_join_tables import appointments, people  # noqa: F401 (fixtures)
from bq_etl.testing import BaseExportShardManagerTest


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
class TestAppointmentsInANonUtcSession(BaseExportShardManagerTest):
    manager_class = AppointmentsExport

    def test_instants_read_in_a_non_utc_session_zone_are_exported_in_utc(self, appointments):
        @event.listens_for(db.engine, "connect")
        def kolkata_session(dbapi_connection, connection_record):
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET TIME ZONE 'Asia/Kolkata'")
            dbapi_connection.commit()  # a SET inside a rolled-back transaction is undone

        db.session.remove()
        db.engine.dispose()
        read_back = db.session.scalar(select(Appointment.cancelled_at).where(Appointment.id == 2))
        db.session.rollback()

        record = self.export_by_key()[2]

        assert read_back.utcoffset() == timedelta(hours=5, minutes=30)
        assert (record["cancelled_at"], record["created_at"], record["scheduled_start"]) == (
            "2024-01-04T00:00:00.000001Z", "2024-01-02T12:00:00.000000Z", "2024-11-03T01:30:00.250000",
        )
