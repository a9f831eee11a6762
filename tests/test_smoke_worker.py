"""
End to end: SQL enqueue → NOTIFY → worker → record completed.
"""

from __future__ import annotations

import datetime

from tests import factories
from tests.conftest import wait_until


async def test_sql_enqueued_job_completes(conn, start_worker):
    gid = await factories.group(conn)
    cur = await conn.execute(
        "SELECT broseph.enqueue('ProcessEngagement', jsonb_build_object('group_id', %s::text,"
        " 'local_date', %s::text)) AS id",
        (gid, datetime.date(2026, 1, 5).isoformat()),
    )
    rid = (await cur.fetchone())["id"]
    await start_worker()

    async def done() -> bool:
        cur = await conn.execute("SELECT status FROM broseph.job_records WHERE id = %s", (rid,))
        return (await cur.fetchone())["status"] == "completed"

    await wait_until(done)
    cur = await conn.execute(
        "SELECT progress, attempts, started_at, finished_at FROM broseph.job_records WHERE id=%s",
        (rid,),
    )
    row = await cur.fetchone()
    assert row["progress"] == 100 and row["attempts"] == 1
    assert row["started_at"] is not None and row["finished_at"] is not None
