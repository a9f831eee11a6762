"""
The ingress's BullMQ consumer (broseph/ingress/consumer.py): one Lua call per job (the ack that
also takes the next job, as BullMQ's Node worker does — the Python Worker makes two), batches
that share one Postgres commit, no log line per job, and a clear refusal when bullmq's internals
it relies on change.
Counted on a private redis-server (`INFO commandstats`) and in Postgres (receipts' xmin).
"""

from __future__ import annotations

import bullmq
import pytest
import redis.asyncio as aioredis
import structlog

from broseph.ingress import consumer
from tests import ingress_support as support
from tests.conftest import wait_until

N = 1000


async def lua_calls(url: str) -> int:
    client = aioredis.from_url(url)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return sum(
        int(v["calls"]) for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval")
    )


async def test_a_job_costs_one_lua_call_and_a_batch_one_commit(conn, settings, tmp_path):
    queue = support.unique_queue()
    with support.private_redis(tmp_path) as server:
        cfg = support.ingress_settings(
            settings,
            queue,
            redis_url=server.url,
            ingress_concurrency=200,
            ingress_batch_size=100,
            # No lock renewal or stalled check during the run: only the job path is counted.
            ingress_lock_duration_ms=120_000,
            ingress_stalled_interval_ms=120_000,
        )
        async with support.producer(queue, server.url) as q:
            await q.addBulk(
                [
                    {"name": "ProcessEngagement", "data": support.valid_data("ProcessEngagement")}
                    for _ in range(N)
                ]
            )
            before = await lua_calls(server.url)
            with structlog.testing.capture_logs() as logs:
                async with support.running_ingress(cfg) as ingress:

                    async def all_acked() -> bool:
                        counts = await q.getJobCounts("waiting", "active", "prioritized")
                        return not any(counts.values())

                    await wait_until(all_acked, within=120, interval=0.1)
                    calls = await lua_calls(server.url) - before
                    outcomes = (await ingress.health()).outcomes
    assert outcomes == {"enqueued": N}
    # No log line per job (the receipt row is the audit trail): started, stopping, stopped.
    info = [e["event"] for e in logs if e["log_level"] != "debug"]
    assert info == ["ingress_started", "ingress_stopping", "ingress_stopped"], info[:10]
    # One moveToFinished per job, each taking the next; moveToActive only to fill the 200
    # slots at the start (the Python Worker: moveToActive + moveToFinished, 2N = 2,000). The
    # counts above (getJobCounts) are Lua calls too: a handful per poll.
    assert calls <= N + 200 + 100, calls
    cur = await conn.execute(
        "SELECT count(*) AS n, count(DISTINCT xmin::text) AS commits FROM broseph.ingress_receipts"
    )
    row = await cur.fetchone()
    assert row["n"] == N
    # Batches of up to 100 (one statement, one commit each); a few short ones while filling.
    assert row["commits"] <= 2 * N // 100, row["commits"]


def test_changed_bullmq_internals_are_named_before_anything_starts(monkeypatch, settings):
    consumer.check_internals()  # the installed bullmq is the one it was written against
    monkeypatch.delattr(bullmq.Worker, "nextJobFromJobData")
    monkeypatch.setattr(
        bullmq.LockManager, "track_job", lambda self, job_id, ts: None, raising=True
    )
    from broseph.ingress.bullmq import BullMQIngress

    with pytest.raises(consumer.IncompatibleBullMQ) as raised:
        BullMQIngress(settings)
    message = str(raised.value)
    assert "Worker.nextJobFromJobData is gone" in message
    assert "LockManager.track_job no longer takes job_id, token, ts" in message
    assert "broseph/ingress/consumer.py" in message
