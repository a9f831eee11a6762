"""
Quiet hours: a daily window in the user's own time zone during which nothing is pushed.

A notification that falls inside the window is not dropped: it is sent when the window ends
(broseph/jobs/send_notification.py reschedules it to `quiet_until(...)`).
"""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo


def quiet_until(
    now: datetime.datetime,
    time_zone: str,
    start: datetime.time | None,
    end: datetime.time | None,
) -> datetime.datetime | None:
    """
    The instant (UTC) the quiet window around `now` ends, or None when `now` is not quiet.

    `start` and `end` are wall-clock times in `time_zone`; `start > end` spans midnight
    (22:00–07:00). Equal times mean no window. The end is the next wall-clock `end` after `now`
    in that zone, so a DST change in between moves the instant, not the local time. An `end`
    that a spring-forward skips (02:30 that night) is read with the offset before the gap, as
    PEP 495 does: 02:30 winter time, i.e. 03:30 summer time.
    """
    if start is None or end is None or start == end:
        return None
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    zone = ZoneInfo(time_zone)
    local = now.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    if start < end:
        quiet = start <= clock < end
    else:
        quiet = clock >= start or clock < end
    if not quiet:
        return None
    day = local.date() if clock < end else local.date() + datetime.timedelta(days=1)
    ends = datetime.datetime.combine(day, end, tzinfo=zone)
    return ends.astimezone(datetime.UTC)
