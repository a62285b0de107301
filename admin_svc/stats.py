"""Per-service request statistics, the read side: the date range asked for, every day of it
with its count. api_svc writes the counts (``fg_count_requests``, docs/schema.md)."""

from __future__ import annotations

import datetime as dt

from admin_svc.errors import invalid
from admin_svc.validation import date_field

#: Longest range GetServiceStatistics answers, days.
MAX_RANGE_DAYS = 366
#: Days covered when no start date is given.
DEFAULT_RANGE_DAYS = 30
INT32_MAX = 2**31 - 1


def date_range(start_text: str, end_text: str, today: dt.date) -> tuple[dt.date, dt.date]:
    """The inclusive range asked for: empty end = today, empty start = 29 days before end."""
    end = date_field(end_text, "end_date") if end_text.strip() else today
    if start_text.strip():
        start = date_field(start_text, "start_date")
    else:
        start = end - dt.timedelta(days=DEFAULT_RANGE_DAYS - 1)
    if start > end:
        raise invalid("start_date", "start_date must not be after end_date")
    if (end - start).days + 1 > MAX_RANGE_DAYS:
        raise invalid("start_date", f"the range must span at most {MAX_RANGE_DAYS} days")
    return start, end


def fill_days(
    counts: dict[dt.date, int], start: dt.date, end: dt.date
) -> list[tuple[dt.date, int]]:
    """Every day of ``start..end`` with its count (0 where none), oldest first."""
    days = (end - start).days + 1
    return [
        (day, counts.get(day, 0)) for day in (start + dt.timedelta(days=i) for i in range(days))
    ]


def saturate_int32(value: int) -> int:
    """``value`` clamped to the int32 range of the contract's counters."""
    return min(value, INT32_MAX)
