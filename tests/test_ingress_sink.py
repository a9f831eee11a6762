"""
The Postgres side of the ingress (no Redis): a delivery becomes one job record plus a receipt,
a redelivery adds nothing (even for a coalescing job type whose record has moved on), Postgres'
refusals become quarantine reasons, concurrent deliveries share one commit (but not one fate),
and quarantine rows keep the raw job and replay once.
"""

from __future__ import annotations

from typing import Any

import psycopg
import psycopg_pool
import pytest

from broseph.ingress import batcher, mapping, quarantine, sink
from tests import ingress_support as support
from tests import pg

ROUTES = mapping.DEFAULT_ROUTES


def delivery(data: Any, *, job_id: str = "41", name: str = "ProcessEngagement", **options: Any):
    return support.delivery(
        name, data, job_id=job_id, options=options, timestamp_ms=1_790_000_000_000
    )


def plan(d: mapping.Delivery) -> mapping.Plan:
    return mapping.plan(d, ROUTES, max_payload_bytes=16384)


def engagement_plans(n: int) -> list[mapping.Plan]:
    data = [support.valid_data("ProcessEngagement") for _ in range(n)]
    return [plan(delivery(d, job_id=str(i))) for i, d in enumerate(data)]


async def ingest(db_url: str, d: mapping.Delivery) -> sink.Outcome:
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        outcome = await sink.ingest(conn, plan(d))
        await conn.commit()
    return outcome


async def counts(conn) -> tuple[int, int]:
    row = await pg.one(
        conn,
        "SELECT (SELECT count(*) FROM broseph.job_records) AS records,"
        " (SELECT count(*) FROM broseph.ingress_receipts) AS receipts",
    )
    return row["records"], row["receipts"]


async def test_a_redelivered_job_adds_nothing(conn, db_url):
    d = delivery(support.valid_data("ProcessEngagement"), attempts=3, priority=2)
    first = await ingest(db_url, d)
    again = await ingest(db_url, d)
    assert not first.duplicate and again.duplicate
    assert again.record_id == first.record_id
    assert await counts(conn) == (1, 1)
    cur = await conn.execute("SELECT * FROM broseph.ingress_receipts")
    receipt = await cur.fetchone()
    assert receipt["delivery_key"] == d.key and receipt["record_id"] == first.record_id
    assert receipt["options"] == {"attempts": 3, "priority": 2}
    assert receipt["produced_at"] == d.produced_at


async def test_a_coalesced_job_redelivered_after_its_record_started_adds_nothing(conn, db_url):
    # Two BullMQ jobs for the same group and day: ProcessEngagement coalesces them into one
    # record, which stores only the first job's idempotency key. The receipt remembers the
    # second, so its redelivery — after the record left 'pending' — creates no new job.
    data = support.valid_data("ProcessEngagement")
    one = await ingest(db_url, delivery(data, job_id="1"))
    two = await ingest(db_url, delivery(data, job_id="2"))
    assert two.record_id == one.record_id and not two.duplicate
    await conn.execute(
        "UPDATE public.procrastinate_jobs SET status = 'doing'"
        " WHERE id = (SELECT procrastinate_job_id FROM broseph.job_records WHERE id = %s)",
        (one.record_id,),
    )
    redelivered = await ingest(db_url, delivery(data, job_id="2"))
    assert redelivered.duplicate and redelivered.record_id == one.record_id
    assert await counts(conn) == (1, 2)


async def test_what_postgres_refuses_becomes_a_reason(conn, db_url):
    # jsonb cannot hold \u0000; the payload itself is valid, the producer options are not.
    d = delivery(support.valid_data("ProcessEngagement"), jobId="nest-\x00-1")
    with pytest.raises(sink.Refused) as caught:
        await ingest(db_url, d)
    assert caught.value.reason.startswith("unsupported Unicode escape sequence")
    assert "\\u0000" in caught.value.reason
    assert await counts(conn) == (0, 0)


@pytest.mark.parametrize(
    ("options", "job_id", "named"),
    [
        ({"attempts": 5000}, "41", "retry.max_attempts"),
        ({"delay": 1000 * 86_400_000}, "41", "run_at"),
        ({}, "j" * 600, "idempotency_key"),
    ],
)
async def test_enqueue_limits_hold_for_bullmq_jobs(conn, db_url, options, job_id, named):
    # migrations/0015: a producer's options beyond enqueue's limits are refused by name, so the
    # job is quarantined with that reason instead of failing later in the worker.
    d = delivery(support.valid_data("ProcessEngagement"), job_id=job_id, **options)
    with pytest.raises(sink.Refused) as caught:
        await ingest(db_url, d)
    assert caught.value.reason.startswith(named), caught.value.reason
    assert len(caught.value.reason) < 400
    assert await counts(conn) == (0, 0)


async def test_quarantine_keeps_the_raw_job_once(conn, db_url):
    d = delivery({"groupId": "nul \x00 here", "x": [1, {"y": None}]}, name="Send\x00Push")
    async with await psycopg.AsyncConnection.connect(db_url) as c:
        assert await sink.quarantine(c, d, "a reason") is True
        assert await sink.quarantine(c, d, "a reason") is False  # a redelivery
    cur = await conn.execute("SELECT * FROM broseph.ingress_quarantine")
    rows = await cur.fetchall()
    assert len(rows) == 1
    row = rows[0]
    assert row["job_name"] == "Send\ufffdPush" and row["delivery_key"] == d.key
    back = mapping.Delivery.from_raw(
        source=row["source"], queue=row["queue"], job_id=row["job_id"], raw=row["raw"]
    )
    assert back == d  # nothing lost


async def test_replay_enqueues_once_and_leaves_a_still_bad_job_as_it_was(conn, db_url):
    pe = support.valid_data("ProcessEngagement")
    good_later = delivery({"gid": pe["groupId"], "localDate": pe["localDate"]}, name="Rollup")
    still_bad = delivery({"groupId": "x"}, job_id="99")
    async with await psycopg.AsyncConnection.connect(db_url) as c:
        await sink.quarantine(c, good_later, "unknown job name 'Rollup'")
        await sink.quarantine(c, still_bad, "missing localDate")
    entries = {e.job_id: e for e in await quarantine_entries(db_url)}
    fixed = {
        **ROUTES,
        "Rollup": mapping.Route(
            job_type="ProcessEngagement", fields={"gid": "group_id", "localDate": "local_date"}
        ),
    }
    async with await psycopg.AsyncConnection.connect(db_url) as c:
        done = await quarantine.replay(c, entries["41"].id, fixed, max_payload_bytes=16384)
        again = await quarantine.replay(c, entries["41"].id, fixed, max_payload_bytes=16384)
        with pytest.raises(mapping.Rejected):
            await quarantine.replay(c, entries["99"].id, fixed, max_payload_bytes=16384)
        with pytest.raises(quarantine.NotQuarantined):
            await quarantine.replay(c, 123456, fixed, max_payload_bytes=16384)
    assert not done.already and again.already and again.record_id == done.record_id
    cur = await conn.execute("SELECT idempotency_key, params FROM broseph.job_records")
    rows = await cur.fetchall()
    assert rows == [
        {
            "idempotency_key": good_later.key,
            "params": {"group_id": pe["groupId"], "local_date": pe["localDate"]},
        }
    ]
    after = {e.job_id: e for e in await quarantine_entries(db_url, include_replayed=True)}
    assert after["41"].record_id == done.record_id and after["41"].replayed_at is not None
    assert after["99"].replayed_at is None and after["99"].reason == "missing localDate"


async def quarantine_entries(db_url: str, **kw: Any) -> list[quarantine.Entry]:
    async with await psycopg.AsyncConnection.connect(db_url) as c:
        return await quarantine.entries(c, **kw)


def test_transient_errors_are_told_apart_from_bad_input():
    assert sink.is_transient(psycopg.OperationalError("server closed the connection"))
    assert sink.is_transient(ConnectionRefusedError())
    assert not sink.is_transient(psycopg.errors.InvalidParameterValue("bad field"))
    assert not sink.is_transient(ValueError("bug"))
    assert sink.pg_text("a\x00b\ud800") == "a\ufffdb?"


async def test_concurrent_deliveries_are_committed_together(conn, db_url):
    async with psycopg_pool.AsyncConnectionPool(db_url, kwargs={"autocommit": True}) as pool:
        outcomes = await batcher.write(pool, engagement_plans(6))
    assert all(isinstance(o, sink.Outcome) for o in outcomes)
    assert len({o.record_id for o in outcomes}) == 6 and not any(o.duplicate for o in outcomes)
    cur = await conn.execute("SELECT DISTINCT xmin::text AS tx FROM broseph.ingress_receipts")
    assert len(await cur.fetchall()) == 1  # one statement, one commit for all six


async def test_one_refused_delivery_does_not_fail_its_batch(conn, db_url):
    async with psycopg_pool.AsyncConnectionPool(db_url, kwargs={"autocommit": True}) as pool:
        good = engagement_plans(5)
        bad = plan(delivery(support.valid_data("ProcessEngagement"), jobId="x\x00y"))
        results = await batcher.write(pool, [*good[:2], bad, *good[2:]])
    assert isinstance(results[2], sink.Refused)
    assert all(isinstance(r, sink.Outcome) for i, r in enumerate(results) if i != 2)
    assert await counts(conn) == (5, 5)


async def test_an_outage_is_every_callers_error():
    dead = f"postgresql://postgres@127.0.0.1:{support.free_port()}/postgres"
    async with psycopg_pool.AsyncConnectionPool(dead, timeout=1.0, open=False) as pool:
        await pool.open(wait=False)
        results = await batcher.write(pool, engagement_plans(3))
    assert all(isinstance(r, psycopg_pool.PoolTimeout) and sink.is_transient(r) for r in results)
