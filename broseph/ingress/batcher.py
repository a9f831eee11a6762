"""
The ingress's Postgres writes: a batch of planned deliveries in ONE statement — one round trip
and one commit (WAL flush) for the lot instead of one each.

The batch is what the BullMQ consumer holds in one lane (`broseph.ingress.consumer`): up to
INGRESS_BATCH_SIZE jobs (default 100; settings.py). Exactly-once is unchanged: a delivery's
outcome exists only once the statement holding its record and receipt has committed, and only
then is its BullMQ job acked. When Postgres refuses a batch's content (one bad delivery makes
the whole statement fail and commit nothing) the batch is split in halves and each retried, so
the bad ones are found in O(log n) statements while the others go through; any other error (an
outage) is every delivery's error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg_pool import AsyncConnectionPool

from broseph.ingress import sink
from broseph.ingress.mapping import Plan


async def write(
    pool: AsyncConnectionPool[Any], plans: Sequence[Plan]
) -> list[sink.Outcome | Exception]:
    """
    Commit the plans; per plan, in order, its outcome or the error that kept it out (`Refused`:
    Postgres refuses its content; anything else: the statement failed for all of them).
    """
    if not plans:
        return []
    try:
        async with pool.connection() as conn:
            return list(await sink.ingest_many(conn, plans))
    except sink.Refused as exc:
        if len(plans) == 1:
            return [exc]
        half = len(plans) // 2
        return [*await write(pool, plans[:half]), *await write(pool, plans[half:])]
    except Exception as exc:
        return [exc] * len(plans)
