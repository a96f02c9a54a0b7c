"""The demo seeder: deterministic, sized by `rows`, portable across SQLite, PostgreSQL and
MariaDB, and rich in edge values. Every test runs once per database."""
from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Iterator

import pytest
from flask import Flask
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import OperationalError

from api import create_app
from api.db import db
from api.demo.seed import SeedError, seed
from api.models import CLINIC_MODELS, Appointment, Member, MemberTrack, Organization, Practitioner, User

SCRATCH_DATABASE = "bq_etl_test_seed"
# Server URLs without a database; override them where the servers live elsewhere.
SERVER_URLS = {
    "postgresql": os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432"),
    "mariadb": os.environ.get("TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306"),
}
CREATE_DATABASE = {
    "postgresql": f"CREATE DATABASE {SCRATCH_DATABASE} ENCODING 'UTF8' TEMPLATE template0",
    "mariadb": f"CREATE DATABASE {SCRATCH_DATABASE} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
}
DROP_DATABASE = {
    "postgresql": f"DROP DATABASE IF EXISTS {SCRATCH_DATABASE} WITH (FORCE)",
    "mariadb": f"DROP DATABASE IF EXISTS {SCRATCH_DATABASE}",
}

EXPECTED_COUNTS_1000 = {
    "organizations": 8,
    "users": 538,
    "members": 504,
    "care_tracks": 8,
    "member_tracks": 581,
    "practitioners": 23,
    "appointments": 1000,
    "messages": 2000,
    "product_events": 3000,
}
EXPECTED_COUNTS_1 = {
    "organizations": 3,
    "users": 8,
    "members": 4,
    "care_tracks": 8,
    "member_tracks": 4,
    "practitioners": 3,
    "appointments": 1,
    "messages": 2,
    "product_events": 3,
}
SMALL_ROWS = 20


@pytest.fixture(scope="module", params=["sqlite", "postgresql", "mariadb"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A URL to an empty database: a SQLite file, or a scratch database on the server."""
    backend = request.param
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('seed') / 'clinic.db'}"
        return
    server = create_engine(SERVER_URLS[backend], isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as connection:
            connection.execute(text(DROP_DATABASE[backend]))
            connection.execute(text(CREATE_DATABASE[backend]))
    except OperationalError as error:
        server.dispose()
        pytest.skip(f"{backend} server unreachable: {error}")
    yield server.url.set(database=SCRATCH_DATABASE).render_as_string(hide_password=False)
    with server.connect() as connection:
        connection.execute(text(DROP_DATABASE[backend]))
    server.dispose()


@pytest.fixture(scope="module")
def app(database_url: str) -> Iterator[Flask]:
    """The clinic app on the scratch database."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "TESTING": True})
    yield app
    with app.app_context():
        db.engine.dispose()  # so the scratch database can be dropped


@pytest.fixture
def context(app: Flask) -> Iterator[None]:
    """An app context for the test body."""
    with app.app_context():
        yield


@pytest.fixture
def seeded(context: None) -> None:
    """The clinic tables, freshly seeded with SMALL_ROWS appointments."""
    seed(SMALL_ROWS, drop=True)


@pytest.fixture(scope="module")
def sqlite_checksum(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The checksum of SMALL_ROWS seeded into a fresh SQLite database: the reference."""
    path = tmp_path_factory.mktemp("reference") / "clinic.db"
    with create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}"}).app_context():
        seed(SMALL_ROWS, drop=True)
        return _checksum()


def _canonical(value: Any) -> str:
    """`value` spelled the same whichever database returned it."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        # PostgreSQL returns instants aware; SQLite and MariaDB return the UTC wall-clock.
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, bytes):
        return value.hex()
    return repr(value)


def _checksum() -> str:
    """SHA-256 over every row of every clinic table, in id order."""
    digest = hashlib.sha256()
    for model in CLINIC_MODELS:
        table = model.__table__
        for row in db.session.execute(select(table).order_by(table.c.id)):
            digest.update("|".join(map(_canonical, row)).encode() + b"\n")
    return digest.hexdigest()


def _table_counts() -> dict[str, int]:
    return {
        model.__tablename__: db.session.scalar(select(func.count()).select_from(model))
        for model in CLINIC_MODELS
    }


def test_seed_returns_rows_per_table(context: None) -> None:
    assert seed(1000, drop=True) == EXPECTED_COUNTS_1000


def test_seed_writes_expected_rows_per_table(context: None) -> None:
    seed(1000, drop=True)
    assert _table_counts() == EXPECTED_COUNTS_1000


def test_seed_of_one_appointment_still_fills_every_table(context: None) -> None:
    assert seed(1, drop=True) == EXPECTED_COUNTS_1


def test_seed_twice_gives_the_same_rows(context: None) -> None:
    seed(SMALL_ROWS, drop=True)
    first = _checksum()
    seed(SMALL_ROWS, drop=True)
    assert _checksum() == first


def test_seed_gives_the_same_rows_as_on_sqlite(seeded: None, sqlite_checksum: str) -> None:
    assert _checksum() == sqlite_checksum


def test_seed_refuses_tables_that_hold_rows(seeded: None) -> None:
    with pytest.raises(SeedError, match="tables already hold rows"):
        seed(SMALL_ROWS)


def test_app_inserts_after_seed_continue_the_ids(seeded: None) -> None:
    user = User(email="new@example.com", first_name="New", last_name=None)
    db.session.add(user)
    db.session.commit()
    assert user.id == 19  # SMALL_ROWS seeds 18 users


def test_seed_has_a_user_without_last_name(seeded: None) -> None:
    assert db.session.get(User, 1).last_name is None


def test_seed_has_an_empty_first_name(seeded: None) -> None:
    assert db.session.get(User, 2).first_name == ""


def test_seed_keeps_non_ascii_names(seeded: None) -> None:
    names = db.session.execute(select(User.first_name, User.last_name).where(User.id.in_([3, 4])).order_by(User.id))
    assert names.all() == [("陽翔", "山田"), ("Sam 🙂", "Nguyễn")]


def test_seed_has_a_member_without_organization(seeded: None) -> None:
    assert db.session.get(Member, 2).organization_id is None


def test_seed_has_members_with_zero_one_and_several_tracks(seeded: None) -> None:
    tracks = dict(
        db.session.execute(
            select(Member.id, func.count(MemberTrack.id))
            .outerjoin(MemberTrack, MemberTrack.member_id == Member.id)
            .where(Member.id.in_([1, 2, 3]))
            .group_by(Member.id)
        ).all()
    )
    assert tracks == {1: 3, 2: 0, 3: 1}


def test_seed_keeps_nested_unicode_json(seeded: None) -> None:
    preferences = db.session.get(Member, 1).preferences
    assert preferences["emergency_contact"] == {"name": "Renée Ü. 🌸", "phones": ["+33 1 23 45 67 89"]}
    assert preferences["nested"] == [[1, 2.5, "deux"], {"empty_list": [], "empty_object": {}}]


def test_seed_stores_null_json_as_sql_null(seeded: None) -> None:
    assert db.session.scalar(select(func.count()).select_from(Member).where(Member.preferences.is_(None))) >= 1


def test_seed_keeps_binary_with_nul_bytes(seeded: None) -> None:
    assert db.session.get(Member, 1).avatar_thumbnail == b"\x89PNG\r\n\x1a\n\x00\xff\xfe"


def test_seed_keeps_money_to_the_cent(seeded: None) -> None:
    rates = db.session.scalars(select(Practitioner.hourly_rate).where(Practitioner.id <= 3).order_by(Practitioner.id))
    assert rates.all() == [Decimal("0.00"), Decimal("999999.99"), Decimal("87.35")]


def test_seed_keeps_microseconds_of_instants(seeded: None) -> None:
    created_at = db.session.get(Organization, 2).created_at
    assert _canonical(created_at) == repr(datetime(2024, 1, 1, 23, 59, 59, 999_999))


def test_seed_appointment_has_every_nullable_column_null(seeded: None) -> None:
    appointment = db.session.get(Appointment, 1)
    assert (appointment.preferred_time_of_day, appointment.cancelled_at, appointment.notes) == (None, None, None)
