"""How often a table is exported: the four cadences the crontab runs."""
from __future__ import annotations

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


_CRON = {
    Cadence.MIDNIGHT: "0 0 * * *",
    Cadence.EVERY_FIVE_HOURS: "0 */5 * * *",
    Cadence.EVERY_THREE_HOURS: "0 */3 * * *",
    Cadence.HOURLY: "0 * * * *",
}
