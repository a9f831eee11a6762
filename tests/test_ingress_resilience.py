"""
The BullMQ ingress when Redis misbehaves, on a private redis-server (its own port and directory,
append-only file on, so its data survives a restart) — the shared Redis is never restarted.
"""

from __future__ import annotations

import asyncio
import uuid

import structlog

from tests import ingress_support as support
from tests.conftest import wait_until


async def record_count(conn) -> int:
    cur = await conn.execute(
        "SELECT count(*) AS n, count(DISTINCT idempotency_key) AS keys FROM broseph.job_records"
    )
    row = await cur.fetchone()
    assert row["n"] == row["keys"], "two records for one delivery"
    return int(row["n"])


UNFINISHED = ("active", "waiting", "prioritized", "delayed")


def engagement_jobs(n: int) -> list[dict]:
    return [
        {"name": "ProcessEngagement", "data": support.valid_data("ProcessEngagement")}
        for _ in range(n)
    ]


async def test_redis_down_at_start_is_retried_until_it_answers(conn, settings, tmp_path):
    server = support.RedisServer(tmp_path)  # not started yet: nothing listens on its port
    queue = support.unique_queue()
    cfg = support.ingress_settings(settings, queue, redis_url=server.url)
    with structlog.testing.capture_logs() as logs:
        async with support.running_ingress(cfg) as ingress:

            async def refused_twice() -> bool:  # it keeps trying while Redis is down
                return [e["event"] for e in logs].count("ingress_redis_unavailable") >= 2

            await wait_until(refused_twice)
            health = await ingress.health()
            assert not health.consuming and health.last_error
            assert any(e["event"] == "ingress_redis_unavailable" for e in logs)
            server.start()
            try:
                await support.wait_consuming(ingress, within=20)
                async with support.producer(queue, server.url) as q:
                    await q.add("ProcessEngagement", support.valid_data("ProcessEngagement"))

                    async def arrived() -> bool:
                        return await record_count(conn) == 1

                    await wait_until(arrived)
            finally:
                await ingress.stop()
                server.stop()
    attempts = [e for e in logs if e["event"] == "ingress_redis_unavailable"]
    assert len(attempts) >= 2  # it kept trying
    assert [e["event"] for e in logs].count("ingress_started") == 1


async def test_redis_restarted_mid_stream_of_1000_jobs(conn, settings, tmp_path):
    queue = support.unique_queue()
    with support.private_redis(tmp_path) as server:
        cfg = support.ingress_settings(settings, queue, redis_url=server.url)
        async with (
            support.running_ingress(cfg) as ingress,
            support.producer(queue, server.url) as q,
        ):
            sent = list(await q.addBulk(engagement_jobs(500)))

            async def some_arrived() -> bool:
                return await record_count(conn) >= 100

            await wait_until(some_arrived, within=30, interval=0.01)
            server.stop()  # graceful: the append-only file keeps the queue
            at_restart = await record_count(conn)
            await asyncio.sleep(1.0)
            server.start()
            sent += list(await q.addBulk(engagement_jobs(500)))

            async def all_arrived() -> bool:
                return await record_count(conn) == 1000

            await wait_until(all_arrived, within=90, interval=0.2)

            async def all_acked() -> bool:
                counts = await q.getJobCounts(*UNFINISHED, "failed", "completed")
                return all(counts[state] == 0 for state in (*UNFINISHED, "failed"))

            await wait_until(all_acked, within=60, interval=0.2)
            outcomes = (await ingress.health()).outcomes
    assert 0 < at_restart < 1000  # Redis really went away mid-stream
    cur = await conn.execute("SELECT idempotency_key, params FROM broseph.job_records")
    rows = await cur.fetchall()
    expected = {support.delivery_key(queue, j.id, j.timestamp) for j in sent}
    assert len(expected) == 1000
    assert {r["idempotency_key"] for r in rows} == expected  # all of them, none twice
    assert len({r["params"]["group_id"] for r in rows}) == 1000
    cur = await conn.execute("SELECT count(*) AS n FROM broseph.ingress_receipts")
    assert (await cur.fetchone())["n"] == 1000
    assert outcomes.get("enqueued") == 1000 and outcomes.get("quarantined") is None
    assert uuid.UUID(str(rows[0]["params"]["group_id"]))
