"""How often a table is exported: the four cadences the crontab runs."""
from __future__ import annotations

from datetime import timedelta
from enum import Enum


class Cadence(str, Enum):
    """A schedule a table is exported on; the value is its name on the command line."""

    MIDNIGHT = "midnight"
    EVERY_FIVE_HOURS = "every_five_hours"
    EVERY_THREE_HOURS = "every_three_hours"
    HOURLY = "hourly"

    @property
    def cron(self) -> str:
        """The cron expression (UTC) the shipped crontab and rq-scheduler use for this cadence."""
        return _CRON[self]

    @property
    def interval(self) -> timedelta:
        """The longest gap between two of the cadence's start times: a table loaded on time is
        never older than this (plus how long its run takes) when the next load lands."""
        return _INTERVAL[self]


_CRON = {
    Cadence.MIDNIGHT: "0 0 * * *",
    Cadence.EVERY_FIVE_HOURS: "0 */5 * * *",
    Cadence.EVERY_THREE_HOURS: "0 */3 * * *",
    Cadence.HOURLY: "0 * * * *",
}

# The longest gap in each cron expression above ("*/5" fires at 0, 5, 10, 15, 20: gaps of 5 h and 4 h).
_INTERVAL = {
    Cadence.MIDNIGHT: timedelta(hours=24),
    Cadence.EVERY_FIVE_HOURS: timedelta(hours=5),
    Cadence.EVERY_THREE_HOURS: timedelta(hours=3),
    Cadence.HOURLY: timedelta(hours=1),
}
