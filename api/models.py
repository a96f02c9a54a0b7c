"""The clinic's tables: employers, users, members and their care tracks, practitioners,
appointments, messages and product analytics events.

Instants (`created_at`, `sent_at`, ...) are `DateTime(timezone=True)` and the app always
writes them in UTC: PostgreSQL stores a TIMESTAMPTZ, while SQLite and MariaDB keep the
UTC wall-clock and hand it back naive. `appointments.scheduled_start` is different on
purpose: a naive local wall-clock time in the member's timezone.
"""
from __future__ import annotations

from datetime import date, datetime, time, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    Time,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.orm import Mapped, mapped_column, relationship

from api.db import db

# MySQL/MariaDB DATETIME and TIME drop fractions of a second unless asked for them.
UtcDateTime = DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
"""An instant, written in UTC."""

WallClockDateTime = DateTime(timezone=False).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
"""A local date and time with no zone attached."""

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer, "sqlite")
"""A 64-bit primary key that still auto-increments on SQLite."""

Money = Numeric(10, 2)
"""An amount of money with cents, up to 99,999,999.99."""

# With the default (none_as_null=False), None would be stored as the JSON text 'null'.
NullableJSON = JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
"""A JSON document, where Python None means SQL NULL (jsonb on PostgreSQL)."""
Document = JSON().with_variant(postgresql.JSONB(), "postgresql")
"""A JSON document that is never NULL (jsonb on PostgreSQL, as a PostgreSQL app would have it)."""


def utcnow() -> datetime:
    """The current instant, timezone-aware, in UTC."""
    return datetime.now(timezone.utc)


class Organization(db.Model):
    """An employer that sponsors its employees' membership."""

    __tablename__ = "organizations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    members: Mapped[list[Member]] = relationship(back_populates="organization")


class User(db.Model):
    """A login: every member, practitioner and staff account is one."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)


class Member(db.Model):
    """A patient: the user's clinical profile, optionally sponsored by an employer."""

    __tablename__ = "members"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    organization_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id"), index=True)
    date_of_birth: Mapped[date] = mapped_column(Date)
    timezone: Mapped[str] = mapped_column(String(64))
    preferences: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON)
    avatar_thumbnail: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    user: Mapped[User] = relationship()
    organization: Mapped[Organization | None] = relationship(back_populates="members")
    tracks: Mapped[list[MemberTrack]] = relationship(back_populates="member")


class CareTrack(db.Model):
    """A care program a member can enrol in, such as fertility or menopause."""

    __tablename__ = "care_tracks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str | None] = mapped_column(Text)


class MemberTrack(db.Model):
    """One enrolment of a member in a care track; a member may hold several."""

    __tablename__ = "member_tracks"
    __table_args__ = (UniqueConstraint("member_id", "care_track_id", "started_on"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    care_track_id: Mapped[int] = mapped_column(ForeignKey("care_tracks.id"), index=True)
    started_on: Mapped[date] = mapped_column(Date)
    ended_on: Mapped[date | None] = mapped_column(Date)

    member: Mapped[Member] = relationship(back_populates="tracks")
    care_track: Mapped[CareTrack] = relationship()


class Practitioner(db.Model):
    """A clinician who sees members; the user's professional profile."""

    __tablename__ = "practitioners"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    specialty: Mapped[str] = mapped_column(String(100), index=True)
    hourly_rate: Mapped[Decimal] = mapped_column(Money)
    rating: Mapped[float | None] = mapped_column(Double)

    user: Mapped[User] = relationship()


class Appointment(db.Model):
    """A video visit booked by a member with a practitioner."""

    __tablename__ = "appointments"
    # Practitioners' calendars are read by (practitioner, start); that index also covers the FK.
    __table_args__ = (Index(None, "practitioner_id", "scheduled_start"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    practitioner_id: Mapped[int] = mapped_column(ForeignKey("practitioners.id"))
    scheduled_start: Mapped[datetime] = mapped_column(WallClockDateTime)
    scheduled_duration_minutes: Mapped[int] = mapped_column(Integer)
    preferred_time_of_day: Mapped[time | None] = mapped_column(Time)
    price: Mapped[Decimal] = mapped_column(Money)
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    notes: Mapped[str | None] = mapped_column(Text)

    member: Mapped[Member] = relationship()
    practitioner: Mapped[Practitioner] = relationship()
    messages: Mapped[list[Message]] = relationship(back_populates="appointment")


class Message(db.Model):
    """A chat message, about an appointment or, with no appointment, a direct message."""

    __tablename__ = "messages"
    # A thread is read in order of sending; that index also covers the FK.
    __table_args__ = (Index(None, "appointment_id", "sent_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    sender_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    body: Mapped[str] = mapped_column(Text)
    sent_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    read: Mapped[bool] = mapped_column(Boolean, default=False)

    appointment: Mapped[Appointment | None] = relationship(back_populates="messages")


class ProductEvent(db.Model):
    """An analytics event from the apps; the largest table, hence the 64-bit key."""

    __tablename__ = "product_events"
    __table_args__ = (Index(None, "name", "occurred_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    properties: Mapped[dict[str, Any]] = mapped_column(Document)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    client_ip: Mapped[str | None] = mapped_column(String(45))


CLINIC_MODELS: tuple[type[db.Model], ...] = (
    Organization,
    User,
    Member,
    CareTrack,
    MemberTrack,
    Practitioner,
    Appointment,
    Message,
    ProductEvent,
)
"""Every clinic model, parents before children."""
