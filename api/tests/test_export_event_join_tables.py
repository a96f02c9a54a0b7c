"""The shipped exports, record by record, on SQLite, PostgreSQL and MariaDB.

Each class inserts a few hand-written rows and compares the records with what BigQuery's load
would read: TIMESTAMP as UTC text, NUMERIC as exact digits, BYTES as base64, JSON as nested
values, NULL columns left out. Every test runs on all three engines against the same expected
records, which is the point: SQLite and MariaDB hand instants back naive (in UTC) and
PostgreSQL zone-aware; MariaDB keeps BOOLEAN as TINYINT(1) and pymysql reads TIME as a
timedelta (the typed columns of the exports' queries pass both on as bool and time).
The seeded tests check what holds for every row of a larger, generated table: each row
exported once, in key order, whatever the shard size.
"""
from __future__ import annotations

from datetime import date, datetime, time, timezone
from decimal import Decimal
from math import ceil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from api.db import db
from api.demo.seed import seed
from bq_etl.errors import RecordError
from api.events_join_data.export_event_join_tables import (
    AppointmentsExport,
    MembersExport,
    MessagesExport,
    PractitionersExport,
    ProductEventsExport,
)
from bq_etl.testing import BaseExportShardManagerTest
from api.models import (
    Appointment,
    CareTrack,
    Member,
    MemberTrack,
    Message,
    Organization,
    Practitioner,
    ProductEvent,
    User,
)

pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgresql", "mariadb"], indirect=True)

UTC = timezone.utc
NEW_YEAR = datetime(2024, 1, 1, tzinfo=UTC)
SEED_ROWS = 200
SMALL_SHARD = 7

PREFERENCES = {
    "language": "fr",
    "notifications": {"email": True, "sms": False, "push": None},
    "topics": ["fertility", "sommeil", "睡眠"],
    "emergency_contact": {"name": "Renée Ü. 🌸", "phones": ["+33 1 23 45 67 89"]},
    "nested": [[1, 2.5, "deux"], {"empty_list": [], "empty_object": {}}],
}


def add(*objects: Any) -> None:
    """Insert `objects` (parents before children) and commit: exports read committed rows."""
    db.session.add_all(objects)
    db.session.commit()


@pytest.fixture
def people(app) -> None:
    """Two employers, three members (users 1-3) and two practitioners (users 4-5)."""
    add(
        Organization(id=1, name="Société Générale de Santé"),
        Organization(id=2, name="日本ヘルスケア株式会社"),
        User(id=1, email="zoë+café@exämple.com", first_name="Zoë", last_name=None, is_active=True),
        User(id=2, email="yamada@example.jp", first_name="陽翔", last_name="山田", is_active=False),
        User(id=3, email="sam@example.com", first_name="Sam 🙂", last_name="Nguyễn", is_active=True),
        User(id=4, email="dr.muller@example.com", first_name="Jürgen", last_name="Müller", is_active=True),
        User(id=5, email="dr.okafor@example.org", first_name="Ngozi", last_name=None, is_active=False),
    )
    add(
        Member(id=1, user_id=1, organization_id=1, date_of_birth=date(2000, 2, 29), timezone="Asia/Kolkata",
               preferences=PREFERENCES, avatar_thumbnail=b"\x89PNG\r\n\x1a\n\x00\xff\xfe", created_at=NEW_YEAR),
        Member(id=2, user_id=2, organization_id=None, date_of_birth=date(1970, 1, 1),
               timezone="America/St_Johns", preferences=None, avatar_thumbnail=None,
               created_at=datetime(2024, 6, 30, 23, 59, 59, 999999, tzinfo=UTC)),
        Member(id=3, user_id=3, organization_id=2, date_of_birth=date(1988, 7, 14), timezone="Asia/Tokyo",
               preferences={}, avatar_thumbnail=b"", created_at=datetime(2024, 2, 29, 12, 0, tzinfo=UTC)),
        Practitioner(id=1, user_id=4, specialty="OB-GYN", hourly_rate=Decimal("0.00"), rating=None),
        Practitioner(id=2, user_id=5, specialty="Santé mentale", hourly_rate=Decimal("999999.99"), rating=4.7),
    )


@pytest.fixture
def appointments(people) -> None:
    """Appointment 1 has every nullable column NULL; 2 is cancelled; 3 has the smallest values."""
    add(
        # 02:30 on 2024-03-10 does not exist in US zones (DST gap): a wall clock, never shifted.
        Appointment(id=1, member_id=1, practitioner_id=1, scheduled_start=datetime(2024, 3, 10, 2, 30),
                    scheduled_duration_minutes=30, preferred_time_of_day=None, price=Decimal("0.00"),
                    cancelled_at=None, created_at=NEW_YEAR, notes=None),
        Appointment(id=2, member_id=2, practitioner_id=2,
                    scheduled_start=datetime(2024, 11, 3, 1, 30, 0, 250000),
                    scheduled_duration_minutes=90, preferred_time_of_day=time(23, 59, 59),
                    price=Decimal("1499999.99"),
                    cancelled_at=datetime(2024, 1, 4, 0, 0, 0, 1, tzinfo=UTC),
                    created_at=datetime(2024, 1, 2, 12, 0, tzinfo=UTC),
                    notes='Patiente préfère le français — 日本語も大丈夫 🙏\nLine two\t"quoted"'),
        Appointment(id=3, member_id=3, practitioner_id=1, scheduled_start=datetime(2025, 1, 1, 0, 0),
                    scheduled_duration_minutes=15, preferred_time_of_day=time(0, 0), price=Decimal("87.35"),
                    cancelled_at=None, created_at=datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC), notes=""),
    )


class SeededTableContract:
    """What every export guarantees on the seeded clinic; a test class sets `seeded_rows`."""

    #: How many rows `seed(rows=200)` puts in the exported table.
    seeded_rows: int

    def test_seeded_rows_are_each_exported_once_in_key_order(self, app):
        seed(rows=SEED_ROWS)
        source_keys = sorted(db.session.scalars(select(self.manager_class.shard_key)))
        key = self.manager_class().key_column

        records = self.export(shard_size=SMALL_SHARD)

        assert len(source_keys) == self.seeded_rows
        # The source keys are unique, so equality with their sorted list means: every row once,
        # none invented, keys strictly increasing across shard boundaries.
        assert [int(record[key]) for record in records] == source_keys
        assert len(self.delivered) == ceil(self.seeded_rows / SMALL_SHARD)

    def test_seeded_records_do_not_depend_on_the_shard_size(self, app):
        seed(rows=SEED_ROWS)

        in_small_shards = self.export(shard_size=SMALL_SHARD)
        in_one_shard = self.export()

        assert len(in_one_shard) == self.seeded_rows
        assert in_small_shards == in_one_shard


class TestAppointmentsExport(SeededTableContract, BaseExportShardManagerTest):
    manager_class = AppointmentsExport
    seeded_rows = 200

    def test_null_columns_are_left_out_of_the_record(self, appointments):
        assert self.export_by_key()[1] == {
            "id": 1,
            "member_id": 1,
            "organization_id": 1,
            "practitioner_id": 1,
            "practitioner_specialty": "OB-GYN",
            "practitioner_email": "dr.muller@example.com",
            "scheduled_start": "2024-03-10T02:30:00.000000",
            "scheduled_duration_minutes": 30,
            "price": "0.00",
            "is_cancelled": False,
            "created_at": "2024-01-01T00:00:00.000000Z",
        }

    def test_cancelled_appointment_of_a_member_without_employer(self, appointments):
        assert self.export_by_key()[2] == {
            "id": 2,
            "member_id": 2,
            "practitioner_id": 2,
            "practitioner_specialty": "Santé mentale",
            "practitioner_email": "dr.okafor@example.org",
            "scheduled_start": "2024-11-03T01:30:00.250000",
            "scheduled_duration_minutes": 90,
            "preferred_time_of_day": "23:59:59.000000",
            "price": "1499999.99",
            "cancelled_at": "2024-01-04T00:00:00.000001Z",
            "is_cancelled": True,
            "created_at": "2024-01-02T12:00:00.000000Z",
            "notes": 'Patiente préfère le français — 日本語も大丈夫 🙏\nLine two\t"quoted"',
        }

    def test_midnight_and_empty_notes_are_values_not_nulls(self, appointments):
        assert self.export_by_key()[3] == {
            "id": 3,
            "member_id": 3,
            "organization_id": 2,
            "practitioner_id": 1,
            "practitioner_specialty": "OB-GYN",
            "practitioner_email": "dr.muller@example.com",
            "scheduled_start": "2025-01-01T00:00:00.000000",
            "scheduled_duration_minutes": 15,
            "preferred_time_of_day": "00:00:00.000000",
            "price": "87.35",
            "is_cancelled": False,
            "created_at": "2024-12-31T23:59:59.000000Z",
            "notes": "",
        }


class TestMembersExport(SeededTableContract, BaseExportShardManagerTest):
    manager_class = MembersExport
    seeded_rows = 104

    @pytest.fixture
    def care_tracks(self, people) -> None:
        """Member 1 holds three tracks, inserted out of date order; member 2 none; member 3 one."""
        add(
            CareTrack(id=1, name="fertility"),
            CareTrack(id=2, name="pregnancy"),
            CareTrack(id=3, name="ménopause"),
        )
        add(
            MemberTrack(id=1, member_id=1, care_track_id=2, started_on=date(2024, 5, 1), ended_on=None),
            MemberTrack(id=2, member_id=1, care_track_id=1, started_on=date(2023, 1, 15),
                        ended_on=date(2023, 12, 31)),
            MemberTrack(id=3, member_id=1, care_track_id=3, started_on=date(2024, 2, 29),
                        ended_on=date(2024, 4, 30)),
            MemberTrack(id=4, member_id=3, care_track_id=3, started_on=date(2024, 3, 1), ended_on=None),
        )

    def test_member_with_employer_json_bytes_and_several_tracks_oldest_first(self, care_tracks):
        assert self.export_by_key()[1] == {
            "id": 1,
            "user_id": 1,
            "email": "zoë+café@exämple.com",
            "first_name": "Zoë",
            "is_active": True,
            "date_of_birth": "2000-02-29",
            "timezone": "Asia/Kolkata",
            "preferences": {
                "language": "fr",
                "notifications": {"email": True, "sms": False, "push": None},
                "topics": ["fertility", "sommeil", "睡眠"],
                "emergency_contact": {"name": "Renée Ü. 🌸", "phones": ["+33 1 23 45 67 89"]},
                "nested": [[1, 2.5, "deux"], {"empty_list": [], "empty_object": {}}],
            },
            "avatar_thumbnail": "iVBORw0KGgoA//4=",
            "created_at": "2024-01-01T00:00:00.000000Z",
            "organization": {"id": 1, "name": "Société Générale de Santé"},
            "care_tracks": [
                {"care_track_id": 1, "name": "fertility", "started_on": "2023-01-15", "ended_on": "2023-12-31"},
                {"care_track_id": 3, "name": "ménopause", "started_on": "2024-02-29", "ended_on": "2024-04-30"},
                {"care_track_id": 2, "name": "pregnancy", "started_on": "2024-05-01"},
            ],
        }

    def test_member_without_employer_preferences_avatar_or_tracks(self, care_tracks):
        assert self.export_by_key()[2] == {
            "id": 2,
            "user_id": 2,
            "email": "yamada@example.jp",
            "first_name": "陽翔",
            "last_name": "山田",
            "is_active": False,
            "date_of_birth": "1970-01-01",
            "timezone": "America/St_Johns",
            "created_at": "2024-06-30T23:59:59.999999Z",
            "care_tracks": [],
        }

    def test_empty_json_empty_bytes_and_one_ongoing_track_are_kept(self, care_tracks):
        assert self.export_by_key()[3] == {
            "id": 3,
            "user_id": 3,
            "email": "sam@example.com",
            "first_name": "Sam 🙂",
            "last_name": "Nguyễn",
            "is_active": True,
            "date_of_birth": "1988-07-14",
            "timezone": "Asia/Tokyo",
            "preferences": {},
            "avatar_thumbnail": "",
            "created_at": "2024-02-29T12:00:00.000000Z",
            "organization": {"id": 2, "name": "日本ヘルスケア株式会社"},
            "care_tracks": [{"care_track_id": 3, "name": "ménopause", "started_on": "2024-03-01"}],
        }

    def test_each_member_in_its_own_shard_still_gets_its_tracks(self, care_tracks):
        records = self.export(shard_size=1)

        assert len(self.delivered) == 3
        assert [[track["care_track_id"] for track in record["care_tracks"]] for record in records] == [
            [1, 3, 2], [], [3],
        ]

    def test_seeded_member_tracks_are_each_exported_once_under_their_member(self, app):
        seed(rows=SEED_ROWS)
        source = db.session.execute(
            select(MemberTrack.member_id, MemberTrack.care_track_id, MemberTrack.started_on)
            .order_by(MemberTrack.member_id, MemberTrack.started_on, MemberTrack.id)
        ).all()

        exported = [
            (record["id"], track["care_track_id"], date.fromisoformat(track["started_on"]))
            for record in self.export(shard_size=SMALL_SHARD)
            for track in record["care_tracks"]
        ]

        assert len(source) == 113
        assert exported == [tuple(row) for row in source]


class TestPractitionersExport(SeededTableContract, BaseExportShardManagerTest):
    manager_class = PractitionersExport
    # 7 rows in shards of 7: exactly one full shard, no empty one after it.
    seeded_rows = 7

    def test_practitioners_with_and_without_rating(self, people):
        assert self.export() == [
            {
                "id": 1,
                "user_id": 4,
                "first_name": "Jürgen",
                "last_name": "Müller",
                "is_active": True,
                "specialty": "OB-GYN",
                "hourly_rate": "0.00",
            },
            {
                "id": 2,
                "user_id": 5,
                "first_name": "Ngozi",
                "is_active": False,
                "specialty": "Santé mentale",
                "hourly_rate": "999999.99",
                "rating": 4.7,
            },
        ]


class TestMessagesExport(SeededTableContract, BaseExportShardManagerTest):
    manager_class = MessagesExport
    seeded_rows = 400

    @pytest.fixture
    def messages(self, appointments) -> None:
        """A direct message with an empty body, and a non-ASCII one about appointment 2."""
        add(
            Message(id=1, appointment_id=None, sender_user_id=2, body="", sent_at=NEW_YEAR, read=False),
            Message(id=2, appointment_id=2, sender_user_id=1, body="Bonjour 👋\nÇa va ? — 日本語のテスト",
                    sent_at=datetime(2024, 1, 2, 12, 0, 0, 123456, tzinfo=UTC), read=True),
        )

    def test_direct_message_has_no_appointment_or_member(self, messages):
        assert self.export_by_key()[1] == {
            "id": 1,
            "sender_user_id": 2,
            "body": "",
            "body_length": 0,
            "sent_at": "2024-01-01T00:00:00.000000Z",
            "read": False,
        }

    def test_message_about_an_appointment_counts_code_points(self, messages):
        assert self.export_by_key()[2] == {
            "id": 2,
            "appointment_id": 2,
            "member_id": 2,
            "sender_user_id": 1,
            "body": "Bonjour 👋\nÇa va ? — 日本語のテスト",
            "body_length": 27,
            "sent_at": "2024-01-02T12:00:00.123456Z",
            "read": True,
        }


class TestProductEventsExport(SeededTableContract, BaseExportShardManagerTest):
    manager_class = ProductEventsExport
    seeded_rows = 600

    @pytest.fixture
    def events(self, people) -> None:
        """Ids on both sides of 2**53 and at the int64 limit."""
        add(
            ProductEvent(
                id=2**53 - 1, user_id=None, name="app_open", client_ip=None, occurred_at=NEW_YEAR,
                properties={
                    "device": {"model": "iPhone15,2", "os": {"name": "iOS", "version": "17.4.1"}},
                    "experiments": [{"name": "onboarding_v2", "variant": "B"}, {"name": "ツアー", "variant": None}],
                    "utm": {"campaign": "printemps-été 🌞", "source": ""},
                    "big_int": 2**53 + 1,
                    "ratio": 0.1,
                    "key with spaces": True,
                    "dotted.key": [],
                },
            ),
            ProductEvent(id=2**53 + 1, user_id=1, name="page_view", client_ip="2001:db8:85a3::8a2e:370:7334",
                         occurred_at=datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=UTC), properties={}),
            ProductEvent(id=2**63 - 1, user_id=3, name="appointment_booked", client_ip="203.0.113.7",
                         occurred_at=datetime(2025, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
                         properties={"appointment_id": 3, "price": "87.35", "tags": ["first", "vidéo"]}),
        )

    def test_id_up_to_2_pow_53_minus_1_is_a_number_with_nested_unicode_json(self, events):
        assert self.export()[0] == {
            "id": 9007199254740991,
            "name": "app_open",
            "properties": {
                "device": {"model": "iPhone15,2", "os": {"name": "iOS", "version": "17.4.1"}},
                "experiments": [{"name": "onboarding_v2", "variant": "B"}, {"name": "ツアー", "variant": None}],
                "utm": {"campaign": "printemps-été 🌞", "source": ""},
                "big_int": 9007199254740993,
                "ratio": 0.1,
                "key with spaces": True,
                "dotted.key": [],
            },
            "occurred_at": "2024-01-01T00:00:00.000000Z",
        }

    def test_ids_beyond_2_pow_53_are_decimal_strings(self, events):
        assert self.export()[1:] == [
            {
                "id": "9007199254740993",
                "user_id": 1,
                "name": "page_view",
                "properties": {},
                "occurred_at": "2024-01-01T00:00:00.000001Z",
                "client_ip": "2001:db8:85a3::8a2e:370:7334",
            },
            {
                "id": "9223372036854775807",
                "user_id": 3,
                "name": "appointment_booked",
                "properties": {"appointment_id": 3, "price": "87.35", "tags": ["first", "vidéo"]},
                "occurred_at": "2025-12-31T23:59:59.999999Z",
                "client_ip": "203.0.113.7",
            },
        ]

    def test_shards_are_cut_exactly_at_ids_beyond_2_pow_53(self, events):
        self.export(shard_size=1)

        assert [[record["id"] for record in shard] for _, shard in sorted(self.delivered.items())] == [
            [9007199254740991], ["9007199254740993"], ["9223372036854775807"],
        ]


class AppointmentsWithTextDuration(AppointmentsExport):
    """A broken export: its records put text where the schema has an INTEGER."""

    @classmethod
    def schema_path(cls) -> Path:
        # ExportShardManager.schema_path looks for schema_file beside the module of the class
        # being exported (this test file), not of the class that set it: name the shipped file.
        return AppointmentsExport.schema_path()

    def to_record(self, row):
        record = super().to_record(row)
        record["scheduled_duration_minutes"] = f"{row.scheduled_duration_minutes} min"
        return record


class TestRecordErrorThroughTheExport(BaseExportShardManagerTest):
    manager_class = AppointmentsWithTextDuration

    def test_a_record_that_does_not_fit_the_schema_names_table_row_column_and_type(self, appointments):
        with pytest.raises(RecordError) as raised:
            self.export()

        error = raised.value
        assert (error.table, error.key, error.column, error.value, error.expected) == (
            "appointments", 1, "scheduled_duration_minutes", "30 min", "INTEGER",
        )
        assert str(error) == (
            "table 'appointments', row key 1, column 'scheduled_duration_minutes': "
            "got str '30 min', expected INTEGER: an INTEGER takes an int; convert it in the export's query() "
            "(a SQL CAST) or in to_record"
        )
        assert self.delivered == {}
