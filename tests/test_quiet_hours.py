"""
Quiet hours end at the user's local wall-clock time, across midnight and DST changes.
"""

from __future__ import annotations

import datetime

import pytest

from broseph.notify.quiet_hours import quiet_until

UTC = datetime.UTC


def utc(*args: int) -> datetime.datetime:
    return datetime.datetime(*args, tzinfo=UTC)


NIGHT = (datetime.time(22), datetime.time(7))


@pytest.mark.parametrize(
    ("now", "zone", "window", "until"),
    [
        # 13:00 in Tokyo: not quiet.
        (utc(2026, 11, 27, 4), "Asia/Tokyo", NIGHT, None),
        # 23:30 in Tokyo: until 07:00 tomorrow, Tokyo time.
        (utc(2026, 11, 27, 14, 30), "Asia/Tokyo", NIGHT, utc(2026, 11, 27, 22)),
        # 03:00 in Tokyo: until 07:00 today.
        (utc(2026, 11, 27, 18), "Asia/Tokyo", NIGHT, utc(2026, 11, 27, 22)),
        # 07:00 sharp: the window is over.
        (utc(2026, 11, 27, 22), "Asia/Tokyo", NIGHT, None),
        # A daytime window: 14:00 in London (GMT) inside 13:00–15:00.
        (utc(2026, 11, 27, 14), "Europe/London", (datetime.time(13), datetime.time(15)),
         utc(2026, 11, 27, 15)),
        # Berlin springs forward in the night of 28–29 March 2026: 07:00 is then CEST (UTC+2).
        (utc(2026, 3, 28, 22, 30), "Europe/Berlin", NIGHT, utc(2026, 3, 29, 5)),
        # New York falls back in the night of 31 Oct–1 Nov 2026: 07:00 is then EST (UTC-5).
        (utc(2026, 11, 1, 3), "America/New_York", NIGHT, utc(2026, 11, 1, 12)),
        # An end inside the spring-forward gap reads as winter time: 02:30 CET = 01:30 UTC.
        (utc(2026, 3, 28, 22), "Europe/Berlin", (datetime.time(22), datetime.time(2, 30)),
         utc(2026, 3, 29, 1, 30)),
        # No window, or an empty one.
        (utc(2026, 11, 27, 14, 30), "Asia/Tokyo", (None, None), None),
        (utc(2026, 11, 27, 14, 30), "Asia/Tokyo", (datetime.time(7), datetime.time(7)), None),
    ],
)  # fmt: skip
def test_quiet_until(now, zone, window, until):
    assert quiet_until(now, zone, *window) == until


def test_naive_now_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        quiet_until(datetime.datetime(2026, 1, 1), "UTC", *NIGHT)
