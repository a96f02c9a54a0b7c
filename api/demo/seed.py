"""Deterministic synthetic clinic data.

`seed(rows)` fills every clinic table from `random.Random(42)` and a fixed base time, so
the same `rows` gives the same rows on SQLite, PostgreSQL and MariaDB, on every run.
`rows` is the number of appointments; the other tables scale with it (see `Sizes`).
The first rows of each table are hand-written edge cases (NULL in every nullable column,
non-ASCII text, empty strings, boundary numbers and times), so even `rows=1` has them.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from itertools import islice
from typing import Any, Callable, Iterable, Iterator

from sqlalchemy import Connection, Table, func, insert, select, text

from api.db import db
from api.models import (
    CLINIC_MODELS,
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

SEED = 42
BASE_TIME = datetime(2024, 1, 1, tzinfo=timezone.utc)
"""The first instant of the data set; everything happens in the two years after it."""
SPAN_MICROSECONDS = 730 * 24 * 3600 * 1_000_000
BATCH_SIZE = 5_000
FIRST_EVENT_ID = 3_000_000_001
"""product_events ids start above 2**31, as in a long-lived events table, to exercise 64-bit keys."""

Row = dict[str, Any]


class SeedError(Exception):
    """The clinic tables already hold rows, so seeding would not be deterministic."""


@dataclass(frozen=True)
class Sizes:
    """How many rows each scaled table gets for a given number of appointments."""

    organizations: int
    members: int
    practitioners: int
    staff: int
    appointments: int
    messages: int
    product_events: int

    @classmethod
    def for_rows(cls, rows: int) -> Sizes:
        """Sizes for `rows` appointments; the constants leave room for every edge row."""
        return cls(
            organizations=rows // 200 + 3,
            members=rows // 2 + 4,
            practitioners=rows // 50 + 3,
            staff=rows // 100 + 1,
            appointments=rows,
            messages=2 * rows,
            product_events=3 * rows,
        )

    @property
    def users(self) -> int:
        """Members, practitioners and staff each have one user."""
        return self.members + self.practitioners + self.staff


def seed(rows: int, drop: bool = False) -> dict[str, int]:
    """Create the clinic tables (dropping them first if `drop`) and fill them; returns rows per table.

    Runs in the current app context and commits once at the end. Raises SeedError if a
    clinic table already holds rows.
    """
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    tables = [model.__table__ for model in CLINIC_MODELS]
    # DDL goes through the session's own connection: a separate one would wait forever on
    # PostgreSQL for locks the session's open transaction holds on these tables.
    connection = db.session.connection()
    if drop:
        db.metadata.drop_all(connection, tables=tables)
    db.metadata.create_all(connection)
    _require_empty(connection, tables)

    data = _ClinicData(random.Random(SEED), Sizes.for_rows(rows))
    counts = {
        model.__tablename__: _insert(model, generate())
        for model, generate in (
            (Organization, data.organizations),
            (User, data.users),
            (Member, data.members),
            (CareTrack, data.care_tracks),
            (MemberTrack, data.member_tracks),
            (Practitioner, data.practitioners),
            (Appointment, data.appointments),
            (Message, data.messages),
            (ProductEvent, data.product_events),
        )
    }
    _resync_sequences(connection, tables)
    db.session.commit()
    return counts


def _require_empty(connection: Connection, tables: list[Table]) -> None:
    filled = [t.name for t in tables if connection.scalar(select(func.count()).select_from(t))]
    if filled:
        raise SeedError(f"tables already hold rows: {', '.join(filled)}; seed with drop=True (--drop)")


def _insert(model: type[db.Model], rows: Iterable[Row]) -> int:
    """Insert `rows` in executemany batches; returns how many."""
    # Core insert on the Table: the ORM's bulk insert leaves out None values, which splits
    # a batch into one statement per distinct set of non-NULL columns (almost one per row).
    statement = insert(model.__table__)
    total = 0
    iterator = iter(rows)
    while batch := list(islice(iterator, BATCH_SIZE)):
        db.session.execute(statement, batch)
        total += len(batch)
    return total


def _resync_sequences(connection: Connection, tables: list[Table]) -> None:
    # The seed writes explicit ids; PostgreSQL's sequences do not see them, so the app's
    # next insert would collide. SQLite and MariaDB continue from MAX(id) by themselves.
    if connection.dialect.name != "postgresql":
        return
    for table in tables:
        connection.execute(
            text(f"SELECT setval(pg_get_serial_sequence(:name, 'id'), MAX(id)) FROM {table.name}"),
            {"name": table.name},
        )


def _instant(position: int, count: int) -> datetime:
    """The `position`-th of `count` instants spread over the span: ids grow with time."""
    return BASE_TIME + timedelta(microseconds=SPAN_MICROSECONDS * (position - 1) // count)


def _cents(value: int) -> Decimal:
    """`value` cents as a Decimal with exactly two places (12000 -> 120.00)."""
    return Decimal(value).scaleb(-2)


ORGANIZATION_WORDS = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne", "Nordwind", "Kōbe")
ORGANIZATION_KINDS = ("Health", "Industries", "Labs", "Logistics", "Bank", "Foods", "Systems", "GmbH", "S.A.", "Partners")
FIRST_NAMES = (
    "Olivia", "Liam", "Amara", "José", "François", "Søren", "Anna", "Анна", "Priya", "Mohammed",
    "Ngọc", "陽翔", "Aoife", "Chloé", "Mateo", "Fatima", "Kenji", "Zoë", "Noah", "Ava",
)
LAST_NAMES = (
    "Smith", "García", "Müller", "O'Brien", "Nguyễn", "Kowalski", "Smith-Jones", "山田", "Okafor", "Haddad",
    "Johansson", "Dubois", "Patel", "Rossi", "Kim", "de la Cruz", "Ivanova", "Brown", "Wilson", "Lee",
)
EMAIL_DOMAINS = ("example.com", "example.org", "mail.example.net")
TIMEZONES = (
    "America/New_York", "America/Chicago", "America/Los_Angeles", "Europe/London", "Europe/Paris",
    "Asia/Tokyo", "Asia/Kolkata", "America/St_Johns", "Australia/Adelaide", "UTC",
)
LANGUAGES = ("en", "es", "fr", "ja", "pt-BR")
TOPICS = ("sleep", "nutrition", "mental-health", "fertility", "menopause", "parenting", "fitness")
CARE_TRACKS = (
    ("fertility", "Support through trying to conceive, IUI and IVF."),
    ("pregnancy", "Prenatal care from the first trimester to delivery."),
    ("postpartum", None),
    ("parenting_and_pediatrics", "Sleep, feeding and development for children up to 10."),
    ("menopause", ""),
    ("pelvic_health", "Physio-led care — exercises, pain and continence."),
    ("adoption_and_surrogacy", "Guidance for every route to parenthood, incl. « gestation pour autrui »."),
    ("general_wellness", "Sleep, stress and nutrition coaching. 睡眠とストレス 😴"),
)
SPECIALTIES = ("OB-GYN", "Mental health", "Nutrition", "Pediatrics", "Lactation", "Physiotherapy", "Fertility")
DURATIONS = (15, 20, 30, 45, 60, 90)
NOTES = (
    "Follow-up in two weeks.",
    "Discussed sleep routine; member will keep a diary.",
    "Referred to in-person care.",
    "Member asked about lab results, line 1\nline 2.",
    "Prefers video; camera issues last time.",
    "Rendez-vous de suivi prévu, résultats à revoir.",
)
MESSAGE_BODIES = (
    "Hi! Just checking in before our appointment.",
    "Thanks, see you then.",
    "Could we move this to the afternoon?",
    "Here are the notes from today's visit.",
    "Merci beaucoup !",
    "ありがとうございます。",
    "👍",
    "Please upload your lab results when you can.",
)
EVENT_NAMES = (
    "app_open", "page_view", "search", "appointment_booked", "appointment_cancelled",
    "message_sent", "video_call_started", "checkout.completed",
)
PLATFORMS = ("ios", "android", "web")
SCREENS = ("home", "care_team", "booking", "messages", "profile", "content/article")


class _ClinicData:
    """Row generators for each table, sharing one random stream; call them in insert order."""

    def __init__(self, rng: random.Random, sizes: Sizes):
        self.rng = rng
        self.sizes = sizes
        self.hourly_rates: list[Decimal] = []

    def _edges_then(self, edges: list[Row], count: int, make: Callable[[int], Row]) -> Iterator[Row]:
        """The first `count` of: the edge rows, then `make(id)` for each following id."""
        yield from edges[:count]
        for row_id in range(len(edges) + 1, count + 1):
            yield make(row_id)

    def organizations(self) -> Iterator[Row]:
        n = self.sizes.organizations
        edges = [
            {"id": 1, "name": "Société Générale de Santé", "created_at": _instant(1, n)},
            {"id": 2, "name": "日本ヘルスケア株式会社", "created_at": BASE_TIME + timedelta(days=1, microseconds=-1)},
            {"id": 3, "name": 'Tacos 🌮 & Co. "West"', "created_at": _instant(3, n)},
        ]
        rng = self.rng
        return self._edges_then(edges, n, lambda i: {
            "id": i,
            "name": f"{rng.choice(ORGANIZATION_WORDS)} {rng.choice(ORGANIZATION_KINDS)} {i}",
            "created_at": _instant(i, n),
        })

    def users(self) -> Iterator[Row]:
        n = self.sizes.users
        edges = [
            {"id": 1, "email": "zoë+café@exämple.com", "first_name": "Zoë", "last_name": None},
            {"id": 2, "email": "o'brien@example.com", "first_name": "", "last_name": "O'Brien"},
            {"id": 3, "email": "yamada@example.jp", "first_name": "陽翔", "last_name": "山田"},
            {"id": 4, "email": "sam@example.com", "first_name": "Sam 🙂", "last_name": "Nguyễn"},
        ]
        for edge in edges:
            edge.update(created_at=_instant(edge["id"], n), is_active=True)
        rng = self.rng
        return self._edges_then(edges, n, lambda i: {
            "id": i,
            "email": f"user{i:07d}@{rng.choice(EMAIL_DOMAINS)}",
            "first_name": rng.choice(FIRST_NAMES),
            "last_name": None if rng.random() < 0.05 else rng.choice(LAST_NAMES),
            "created_at": _instant(i, n),
            "is_active": rng.random() >= 0.04,
        })

    def members(self) -> Iterator[Row]:
        n, users, organizations = self.sizes.members, self.sizes.users, self.sizes.organizations
        edges = [
            {
                "organization_id": 1, "date_of_birth": date(2000, 2, 29), "timezone": "Asia/Kolkata",
                "preferences": {
                    "language": "fr",
                    "notifications": {"email": True, "sms": False, "push": None},
                    "topics": ["fertility", "sommeil", "睡眠"],
                    "emergency_contact": {"name": "Renée Ü. 🌸", "phones": ["+33 1 23 45 67 89"]},
                    "nested": [[1, 2.5, "deux"], {"empty_list": [], "empty_object": {}}],
                },
                "avatar_thumbnail": b"\x89PNG\r\n\x1a\n\x00\xff\xfe",
            },
            {
                "organization_id": None, "date_of_birth": date(1970, 1, 1), "timezone": "America/St_Johns",
                "preferences": None, "avatar_thumbnail": None,
            },
            {
                "organization_id": 2, "date_of_birth": date(1988, 7, 14), "timezone": "Asia/Tokyo",
                "preferences": {}, "avatar_thumbnail": b"",
            },
            {
                "organization_id": 3, "date_of_birth": date(1955, 12, 31), "timezone": "Australia/Adelaide",
                "preferences": {"language": "ja", "notifications": {"email": False, "sms": True, "push": True}},
                "avatar_thumbnail": None,
            },
        ]
        for member_id, edge in enumerate(edges, start=1):
            edge.update(id=member_id, user_id=member_id, created_at=_instant(member_id, users))
        rng = self.rng

        def make(i: int) -> Row:
            return {
                "id": i,
                "user_id": i,  # members own users 1..members
                "organization_id": None if rng.random() < 0.25 else rng.randint(1, organizations),
                "date_of_birth": date(1945, 1, 1) + timedelta(days=rng.randrange(62 * 365)),
                "timezone": rng.choice(TIMEZONES),
                "preferences": self._preferences(),
                "avatar_thumbnail": rng.randbytes(rng.randint(16, 64)) if rng.random() < 0.3 else None,
                "created_at": _instant(i, users) + timedelta(seconds=rng.randint(1, 600)),
            }

        return self._edges_then(edges, n, make)

    def _preferences(self) -> dict[str, Any] | None:
        rng = self.rng
        if rng.random() < 0.2:
            return None
        return {
            "language": rng.choice(LANGUAGES),
            "notifications": {"email": rng.random() < 0.8, "sms": rng.random() < 0.4, "push": rng.random() < 0.6},
            "topics": rng.sample(TOPICS, rng.randint(0, 3)),
        }

    def care_tracks(self) -> Iterator[Row]:
        return iter([
            {"id": i, "name": name, "description": description}
            for i, (name, description) in enumerate(CARE_TRACKS, start=1)
        ])

    def member_tracks(self) -> Iterator[Row]:
        rng, row_id = self.rng, 0
        # Member 1 has several tracks, member 2 none, member 3 exactly one that never ended.
        fixed = {1: 3, 2: 0, 3: 1}
        for member_id in range(1, self.sizes.members + 1):
            count = fixed.get(member_id, rng.choices((0, 1, 2, 3), weights=(25, 50, 18, 7))[0])
            joined = _instant(member_id, self.sizes.members).date()
            for track_id in sorted(rng.sample(range(1, len(CARE_TRACKS) + 1), count)):
                row_id += 1
                started = joined + timedelta(days=rng.randrange(365))
                ongoing = member_id == 3 or rng.random() < 0.5
                yield {
                    "id": row_id,
                    "member_id": member_id,
                    "care_track_id": track_id,
                    "started_on": started,
                    "ended_on": None if ongoing else started + timedelta(days=rng.randint(1, 400)),
                }

    def practitioners(self) -> Iterator[Row]:
        n, members = self.sizes.practitioners, self.sizes.members
        edges = [
            {"specialty": "OB-GYN", "hourly_rate": Decimal("0.00"), "rating": None},
            {"specialty": "Mental health", "hourly_rate": Decimal("999999.99"), "rating": 5.0},
            {"specialty": "Nutrition", "hourly_rate": Decimal("87.35"), "rating": 4.25},
        ]
        for practitioner_id, edge in enumerate(edges, start=1):
            edge.update(id=practitioner_id, user_id=members + practitioner_id)
        rng = self.rng
        rows = self._edges_then(edges, n, lambda i: {
            "id": i,
            "user_id": members + i,  # practitioners own the users after the members'
            "specialty": rng.choice(SPECIALTIES),
            "hourly_rate": _cents(rng.randrange(6_000, 40_000)),
            "rating": None if rng.random() < 0.15 else round(rng.uniform(2.5, 5.0), 2),
        })
        for row in rows:
            self.hourly_rates.append(row["hourly_rate"])
            yield row

    def _price(self, practitioner_id: int, minutes: int) -> Decimal:
        rate = self.hourly_rates[practitioner_id - 1]
        return (rate * minutes / 60).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)

    def appointments(self) -> Iterator[Row]:
        n, rng = self.sizes.appointments, self.rng
        edges = [
            # A wall-clock time that does not exist in US zones (DST gap); every nullable is NULL.
            {"member_id": 1, "practitioner_id": 1, "scheduled_start": datetime(2024, 3, 10, 2, 30),
             "scheduled_duration_minutes": 30, "preferred_time_of_day": None, "cancelled_at": None,
             "notes": None},
            # An ambiguous wall-clock time (DST fall-back), the largest price, cancelled.
            {"member_id": 2, "practitioner_id": 2, "scheduled_start": datetime(2024, 11, 3, 1, 30),
             "scheduled_duration_minutes": 90, "preferred_time_of_day": time(23, 59, 59),
             "cancelled_at": BASE_TIME + timedelta(days=3, microseconds=1),
             "notes": 'Line one\nLine two, with "quotes", a tab\tand a back\\slash; 100% done.'},
            {"member_id": 4, "practitioner_id": 3, "scheduled_start": datetime(2024, 12, 31, 23, 59, 59),
             "scheduled_duration_minutes": 15, "preferred_time_of_day": time(0, 0), "cancelled_at": None,
             "notes": ""},
            {"member_id": 3, "practitioner_id": 3, "scheduled_start": datetime(2025, 1, 1, 0, 0),
             "scheduled_duration_minutes": 45, "preferred_time_of_day": time(12, 30), "cancelled_at": None,
             "notes": "Patiente préfère le français — 日本語も大丈夫 🙏"},
        ]
        for appointment_id, edge in enumerate(edges, start=1):
            edge.update(
                id=appointment_id,
                price=self._price(edge["practitioner_id"], edge["scheduled_duration_minutes"]),
                created_at=_instant(appointment_id, n),
            )

        def make(i: int) -> Row:
            created = _instant(i, n)
            practitioner_id = rng.randint(1, self.sizes.practitioners)
            minutes = rng.choice(DURATIONS)
            start_day = created.date() + timedelta(days=rng.randint(1, 60))
            start = datetime.combine(start_day, time(rng.randint(7, 20), rng.choice((0, 15, 30, 45))))
            cancelled = None
            if rng.random() < 0.12:
                cancelled = created + timedelta(seconds=rng.randint(60, 30 * 86400), microseconds=rng.randrange(10**6))
            return {
                "id": i,
                "member_id": rng.randint(1, self.sizes.members),
                "practitioner_id": practitioner_id,
                "scheduled_start": start,
                "scheduled_duration_minutes": minutes,
                "preferred_time_of_day": None if rng.random() < 0.4 else time(rng.randint(6, 21), rng.choice((0, 30))),
                "price": self._price(practitioner_id, minutes),
                "cancelled_at": cancelled,
                "created_at": created,
                "notes": None if rng.random() < 0.55 else rng.choice(NOTES),
            }

        return self._edges_then(edges, n, make)

    def messages(self) -> Iterator[Row]:
        n, rng, members = self.sizes.messages, self.rng, self.sizes.members
        appointments = self.sizes.appointments
        edges = [
            {"appointment_id": None, "sender_user_id": 2, "body": "", "read": False},
            {"appointment_id": 1, "sender_user_id": 1, "body": "Bonjour 👋\nÇa va ? — 日本語のテスト\r\n\"quoted\"", "read": True},
            {"appointment_id": 1, "sender_user_id": members + 1, "body": "Long message. " * 500, "read": False},
        ]
        for message_id, edge in enumerate(edges, start=1):
            edge.update(id=message_id, sent_at=_instant(message_id, n))

        def make(i: int) -> Row:
            if rng.random() < 0.08:  # a direct message, not about an appointment
                appointment_id, sender = None, rng.randint(1, members)
            else:
                # Only appointments created by now: ids grow with time.
                appointment_id = rng.randint(1, max(1, i * appointments // n))
                sender = rng.randint(1, members) if rng.random() < 0.5 else members + rng.randint(1, self.sizes.practitioners)
            return {
                "id": i,
                "appointment_id": appointment_id,
                "sender_user_id": sender,
                "body": rng.choice(MESSAGE_BODIES),
                "sent_at": _instant(i, n) + timedelta(microseconds=rng.randrange(10**6)),
                "read": rng.random() < 0.7,
            }

        return self._edges_then(edges, n, make)

    def product_events(self) -> Iterator[Row]:
        n, rng, users = self.sizes.product_events, self.rng, self.sizes.users
        edges = [
            {"user_id": None, "name": "app_open", "client_ip": None, "properties": {
                "platform": "ios",
                "device": {"model": "iPhone15,2", "os": {"name": "iOS", "version": "17.4.1"}},
                "experiments": [{"name": "onboarding_v2", "variant": "B"}, {"name": "ツアー", "variant": None}],
                "utm": {"campaign": "printemps-été 🌞", "source": ""},
                "big_int": 2**53 + 1,
                "ratio": 0.1,
                "key with spaces": True,
                "dotted.key": [],
            }},
            {"user_id": 1, "name": "page_view", "client_ip": "2001:db8:85a3::8a2e:370:7334", "properties": {}},
            {"user_id": 3, "name": "appointment_booked", "client_ip": "203.0.113.7",
             "properties": {"appointment_id": 4, "price": "21.84", "currency": "EUR", "tags": ["first", "vidéo"]}},
        ]
        for offset, edge in enumerate(edges):
            edge.update(id=FIRST_EVENT_ID + offset, occurred_at=_instant(offset + 1, n))

        def make(position: int) -> Row:
            properties: dict[str, Any] = {"platform": rng.choice(PLATFORMS), "screen": rng.choice(SCREENS)}
            if rng.random() < 0.3:
                properties["duration_ms"] = rng.randint(5, 120_000)
            if rng.random() < 0.2:
                properties["experiment"] = {"name": "booking_flow", "variant": rng.choice("AB")}
            return {
                "id": FIRST_EVENT_ID + position - 1,
                "user_id": None if rng.random() < 0.06 else rng.randint(1, users),
                "name": rng.choice(EVENT_NAMES),
                "properties": properties,
                "occurred_at": _instant(position, n) + timedelta(microseconds=rng.randrange(10**6)),
                "client_ip": self._client_ip(),
            }

        return self._edges_then(edges, n, make)

    def _client_ip(self) -> str | None:
        rng, draw = self.rng, self.rng.random()
        if draw < 0.1:
            return None
        if draw < 0.8:
            return f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        return "2001:db8:" + ":".join(f"{rng.randrange(0x10000):x}" for _ in range(6))
