"""The clinic's BigQuery exports ("event join tables"): one ExportShardManager per table.

Each names its table, schema file (in `schemas/`), cadence and shard key, and says which rows
to export (`query`) and how a row becomes a record (`to_record` / `records`). To add one,
follow docs/guides/adding-a-new-table-to-bq.md.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable, Sequence

from sqlalchemy import Row, Select, func, select
from sqlalchemy.orm import aliased

from api.models import (Appointment, CareTrack, Member, MemberTrack, Message, Organization, Practitioner,
                        ProductEvent, User)

from bq_etl import Cadence, ExportShardManager

PractitionerUser = aliased(User, name="practitioner_user")


class AppointmentsExport(ExportShardManager):
    """Every appointment with its member's employer and its practitioner (a four-table join)."""

    table_name = "appointments"
    schema_file = "appointments.json"
    cadence = Cadence.HOURLY
    shard_key = Appointment.id

    def query(self) -> Select:
        return (
            select(
                Appointment.id,
                Appointment.member_id,
                Member.organization_id,
                Appointment.practitioner_id,
                Practitioner.specialty.label("practitioner_specialty"),
                PractitionerUser.email.label("practitioner_email"),
                Appointment.scheduled_start,
                Appointment.scheduled_duration_minutes,
                Appointment.preferred_time_of_day,
                Appointment.price,
                Appointment.cancelled_at,
                Appointment.cancelled_at.is_not(None).label("is_cancelled"),
                Appointment.created_at,
                Appointment.notes,
            )
            .join(Member, Member.id == Appointment.member_id)
            .join(Practitioner, Practitioner.id == Appointment.practitioner_id)
            .join(PractitionerUser, PractitionerUser.id == Practitioner.user_id)
        )


class MembersExport(ExportShardManager):
    """Members with their user, their employer (a RECORD) and their care tracks (REPEATED RECORD)."""

    table_name = "members"
    schema_file = "members.json"
    cadence = Cadence.EVERY_THREE_HOURS
    shard_key = Member.id

    def query(self) -> Select:
        return (
            select(
                Member.id,
                Member.user_id,
                User.email,
                User.first_name,
                User.last_name,
                User.is_active,
                Member.date_of_birth,
                Member.timezone,
                Member.preferences,
                Member.avatar_thumbnail,
                Member.created_at,
                Organization.id.label("organization_id"),
                Organization.name.label("organization_name"),
            )
            .join(User, User.id == Member.user_id)
            .outerjoin(Organization, Organization.id == Member.organization_id)
        )

    def records(self, rows: Sequence[Row]) -> Iterable[dict[str, Any]]:
        tracks = defaultdict(list)
        if rows:
            for track in self.lookup(
                select(MemberTrack.member_id, MemberTrack.care_track_id, CareTrack.name,
                       MemberTrack.started_on, MemberTrack.ended_on)
                .join(CareTrack, CareTrack.id == MemberTrack.care_track_id)
                .where(MemberTrack.member_id.in_([row.id for row in rows]))
                .order_by(MemberTrack.member_id, MemberTrack.started_on, MemberTrack.id)
            ):
                tracks[track.member_id].append(
                    {"care_track_id": track.care_track_id, "name": track.name,
                     "started_on": track.started_on, "ended_on": track.ended_on}
                )
        for row in rows:
            record = dict(row._mapping)
            organization_id = record.pop("organization_id")
            organization_name = record.pop("organization_name")
            record["organization"] = (
                {"id": organization_id, "name": organization_name} if organization_id is not None else None
            )
            record["care_tracks"] = tracks.get(row.id, [])
            yield record


class PractitionersExport(ExportShardManager):
    """Practitioners with their user's name and activity."""

    table_name = "practitioners"
    schema_file = "practitioners.json"
    cadence = Cadence.MIDNIGHT
    shard_key = Practitioner.id

    def query(self) -> Select:
        return select(
            Practitioner.id,
            Practitioner.user_id,
            User.first_name,
            User.last_name,
            User.is_active,
            Practitioner.specialty,
            Practitioner.hourly_rate,
            Practitioner.rating,
        ).join(User, User.id == Practitioner.user_id)


class MessagesExport(ExportShardManager):
    """Messages with the appointment they belong to, if any."""

    table_name = "messages"
    schema_file = "messages.json"
    cadence = Cadence.EVERY_FIVE_HOURS
    shard_key = Message.id

    def query(self) -> Select:
        return select(
            Message.id,
            Message.appointment_id,
            Appointment.member_id,
            Message.sender_user_id,
            Message.body,
            # Characters, as Python's len() counts them (SQLite's length() on SQLite).
            func.char_length(Message.body).label("body_length"),
            Message.sent_at,
            Message.read,
        ).outerjoin(Appointment, Appointment.id == Message.appointment_id)


class ProductEventsExport(ExportShardManager):
    """Product analytics events; `properties` is exported as a BigQuery JSON value."""

    table_name = "product_events"
    schema_file = "product_events.json"
    cadence = Cadence.HOURLY
    shard_key = ProductEvent.id
    shard_size = 100_000

    def query(self) -> Select:
        return select(
            ProductEvent.id,
            ProductEvent.user_id,
            ProductEvent.name,
            ProductEvent.properties,
            ProductEvent.occurred_at,
            ProductEvent.client_ip,
        )
