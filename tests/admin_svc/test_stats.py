"""Statistics date ranges, filled days and saturated counts."""

from __future__ import annotations

import datetime as dt

import pytest

from admin_svc.stats import date_range, fill_days, saturate_int32
from facegrid.errors import ServiceError


def test_statistics_ranges() -> None:
    today = dt.date(2025, 3, 10)
    assert date_range("", "", today) == (dt.date(2025, 2, 9), today)
    assert date_range("2025-03-01", "2025-03-02", today) == (
        dt.date(2025, 3, 1),
        dt.date(2025, 3, 2),
    )
    with pytest.raises(ServiceError):
        date_range("2025-03-03", "2025-03-02", today)
    with pytest.raises(ServiceError):
        date_range("2023-01-01", "2025-03-02", today)
    days = fill_days({dt.date(2025, 3, 2): 4}, dt.date(2025, 3, 1), dt.date(2025, 3, 3))
    assert days == [(dt.date(2025, 3, 1), 0), (dt.date(2025, 3, 2), 4), (dt.date(2025, 3, 3), 0)]
    assert saturate_int32(2**40) == 2**31 - 1
