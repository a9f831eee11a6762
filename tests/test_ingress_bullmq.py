"""
The BullMQ ingress end to end, in-process: real Redis (a unique queue per test, obliterated after),
the real npm `bullmq` (tests/node/producer.mjs, the brief's BrosephPublisher) and the Python
`bullmq` Queue as producers, real Postgres. Every job becomes exactly one job record; producer
options are honoured; bad input is quarantined while the ingress keeps going.
"""

from __future__ import annotations

import asyncio
import datetime
import time
import uuid
from typing import Any

import psycopg
import psycopg.conninfo
import pytest
import structlog
from prometheus_client import REGISTRY

from broseph import jobs
from broseph.ingress import Ingress, mapping
from tests import ingress_strategies as strategies
from tests import ingress_support as support
from tests.conftest import wait_until


async def records_by_key(conn) -> dict[str, dict[str, Any]]:
    cur = await conn.execute(
        """
        SELECT r.idempotency_key, r.id, r.job_type, r.params, r.status, r.source, r.max_attempts,
               r.created_at, j.priority, j.scheduled_at, j.args
          FROM broseph.job_records r
          JOIN public.procrastinate_jobs j ON j.id = r.procrastinate_job_id
        """
    )
    return {row["idempotency_key"]: row for row in await cur.fetchall()}


async def count(conn, sql: str, *params: Any) -> int:
    cur = await conn.execute(sql, params)
    return int((await cur.fetchone())["n"])


def ingress_metric(queue: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "broseph_ingress_jobs_total", {"queue": queue, "outcome": outcome}
    )
    return value or 0.0


async def test_node_and_python_producers_each_job_becomes_exactly_one_record(conn, settings):
    queue = support.unique_queue()
    names = sorted(support.live_routes())
    async with (
        support.producer(queue) as q,
        support.running_ingress(support.ingress_settings(settings, queue)) as ingress,
    ):
        assert isinstance(ingress, Ingress)
        # The Node API, exactly as BrosephPublisher publishes (attempts 3, exponential backoff),
        # plus one job with a producer-chosen id and a priority.
        pairs = [(n, *support.valid_pair(n)) for n in [*names, "ProcessEngagement"]]
        items = [{"publish": support.NODE_PUBLISH[n], "payload": data} for n, data, _ in pairs]
        items[-1]["options"] = {"jobId": f"nest-{uuid.uuid4()}", "priority": 4}
        node_jobs = support.node_publish(queue, items)
        sent = [
            (j["id"], j["timestamp"], item, params)
            for j, item, (_, _, params) in zip(node_jobs, items, pairs, strict=True)
        ]
        # The Python bullmq Queue as a second producer, with its own retry policy.
        for name in names:
            data, params = support.valid_pair(name)
            options = {"attempts": 2, "backoff": {"type": "fixed", "delay": 250}, "priority": 7}
            job = await q.add(name, data, options)
            sent.append((job.id, job.timestamp, {"payload": data, "options": options}, params))

        async def all_acked() -> bool:
            counts = await q.getJobCounts("completed", "active", "waiting", "prioritized")
            return counts["completed"] == len(sent)

        await wait_until(all_acked, within=30)
        health = await ingress.health()
        assert health.consuming and health.outcomes == {"enqueued": len(sent)}
        acked = {job_id: await q.getJob(job_id) for job_id, *_ in sent}

    records = await records_by_key(conn)
    assert len(records) == len(sent)  # nothing else, nothing twice
    for job_id, timestamp, item, params in sent:
        key = support.delivery_key(queue, job_id, timestamp)
        record = records[key]
        assert record["source"] == "bullmq" and record["status"] == "pending"
        job = acked[job_id]
        route = mapping.DEFAULT_ROUTES[job.name]
        assert record["job_type"] == route.job_type
        model = jobs.get(route.job_type).payload
        assert record["params"] == model.model_validate(params).to_params()
        assert job.returnvalue == {"record_id": str(record["id"]), "duplicate": False}
        options = {"attempts": 3, **item.get("options", {})}
        assert record["max_attempts"] == options["attempts"]
        assert record["priority"] == -options.get("priority", 0)
        assert record["args"]["_retry"]["max_attempts"] == options["attempts"]
    custom = [k for k in records if k.startswith(f"bullmq:{queue}:nest-")]
    assert len(custom) == 1 and custom[0].count(":") == 2  # producer id: no timestamp in key
    assert ingress_metric(queue, "enqueued") == len(sent)


async def test_a_delayed_job_arrives_when_due_not_before(conn, settings):
    queue = support.unique_queue()
    async with (
        support.producer(queue) as q,
        support.running_ingress(support.ingress_settings(settings, queue)) as ingress,
    ):
        await support.wait_consuming(ingress)
        node = support.node_publish(
            queue,
            [
                {
                    "publish": "engagement",
                    "payload": support.valid_data("ProcessEngagement"),
                    "options": {"delay": 10_000},
                }
            ],
        )[0]
        py = await q.add(
            "ProcessEngagement", support.valid_data("ProcessEngagement"), {"delay": 10_500}
        )
        due = {
            support.delivery_key(queue, node["id"], node["timestamp"]): node["timestamp"] + 10_000,
            support.delivery_key(queue, py.id, py.timestamp): py.timestamp + 10_500,
        }
        # Not before: until shortly before it is due, no record exists and BullMQ holds the job.
        while time.time() * 1000 < min(due.values()) - 700:
            assert await count(conn, "SELECT count(*) AS n FROM broseph.job_records") == 0
            await asyncio.sleep(0.2)
        assert (await q.getJobCounts("delayed"))["delayed"] == 2

        async def both_arrived() -> bool:
            return await count(conn, "SELECT count(*) AS n FROM broseph.job_records") == 2

        await wait_until(both_arrived, within=15)
    records = await records_by_key(conn)
    assert set(records) == set(due)
    for key, due_ms in due.items():
        assert records[key]["created_at"] >= support.utc(due_ms)  # arrived when due
        assert records[key]["scheduled_at"] == support.utc(due_ms)  # and runs no earlier


async def test_a_transient_ingest_failure_is_retried_by_bullmq_with_its_backoff(
    conn, settings, db_url
):
    async with support.ingress_behind_proxy(settings, db_url) as (proxy, queue, cfg):
        async with support.producer(queue) as q, support.running_ingress(cfg) as ingress:
            # A first job goes through: the ingress holds a live database connection.
            await q.add("ProcessEngagement", support.valid_data("ProcessEngagement"))

            async def first_arrived() -> bool:
                return await count(conn, "SELECT count(*) AS n FROM broseph.job_records") == 1

            await wait_until(first_arrived)
            proxy.cut()  # the database becomes unreachable for the ingress
            published = support.node_publish(
                queue,
                [
                    {
                        "publish": "engagement",
                        "payload": support.valid_data("ProcessEngagement"),
                        "options": {"backoff": {"type": "exponential", "delay": 5000}},
                    }
                ],
            )[0]
            job_id = published["id"]

            async def failed_once() -> bool:
                job = await q.getJob(job_id)
                return job.attemptsMade == 1 and await job.isDelayed()

            await wait_until(failed_once, within=15, interval=0.02)
            seen_failing = datetime.datetime.now(datetime.UTC)
            held = await q.getJob(job_id)
            assert held.delay == 5000  # BullMQ applied the producer's backoff
            assert held.failedReason
            assert (await ingress.health()).outcomes["error"] == 1
            proxy.restore()
            key = support.delivery_key(queue, job_id, published["timestamp"])

            async def arrived() -> bool:
                return key in await records_by_key(conn)

            await wait_until(arrived, within=20)

            async def acked() -> bool:
                return await (await q.getJob(job_id)).isCompleted()

            await wait_until(acked)
    records = await records_by_key(conn)
    assert len(records) == 2
    # Retried after the backoff, not at once (seen_failing is after the failure itself).
    assert records[key]["created_at"] - seen_failing >= datetime.timedelta(seconds=4.5)


async def test_malformed_jobs_are_quarantined_and_the_ingress_keeps_going(conn, settings):
    limit = 1024
    queue = support.unique_queue()
    generated = strategies.collect(strategies.malformed_jobs(limit), 520)
    assert len(generated) >= 500
    cfg = support.ingress_settings(settings, queue, ingress_max_payload_bytes=limit)
    expected: dict[str, str] = {}  # delivery key → a fragment its reason must contain
    async with support.producer(queue) as q, support.running_ingress(cfg) as ingress:
        # Hand-picked, from the Node producer: missing field, invalid uuid, oversized.
        pe = support.valid_data("ProcessEngagement")
        node_cases = [
            ({"localDate": pe["localDate"]}, "Field required"),
            ({**pe, "groupId": "not-a-uuid"}, "Input should be a valid UUID"),
            ({**pe, "note": "x" * (limit + 1)}, "byte limit"),
        ]
        published = support.node_publish(
            queue, [{"publish": "engagement", "payload": data} for data, _ in node_cases]
        )
        for job, (_, fragment) in zip(published, node_cases, strict=True):
            expected[support.delivery_key(queue, job["id"], job["timestamp"])] = fragment
        # Hand-picked, from Python: unknown name, non-object data.
        picked = [
            ("SendPush", {"userId": str(uuid.uuid4())}, "unknown job name"),
            ("ProcessEngagement", "groupId", "must be a JSON object, got string"),
            ("ProcessEngagement", [pe], "must be a JSON object, got array"),
            ("ProcessEngagement", None, "must be a JSON object, got null"),
        ]
        cases = [(name, data, fragment) for name, data, fragment in picked]
        cases += [(name, data, fragment) for _, name, data, fragment in generated]
        for start in range(0, len(cases), 100):
            chunk = cases[start : start + 100]
            added = await q.addBulk(
                [{"name": n, "data": d, "opts": {"attempts": 3}} for n, d, _ in chunk]
            )
            for job, (_, _, fragment) in zip(added, chunk, strict=True):
                expected[support.delivery_key(queue, job.id, job.timestamp)] = fragment
        # After all that, a valid job still goes through.
        valid = await q.add("ProcessEngagement", support.valid_data("ProcessEngagement"))

        async def settled() -> bool:
            counts = await q.getJobCounts("failed", "completed")
            return counts == {"failed": len(expected), "completed": 1}

        await wait_until(settled, within=60)
        failed = {job.id: job for job in await q.getJobs(["failed"], 0, -1)}
        health = await ingress.health()
    assert health.consuming
    assert health.outcomes == {"quarantined": len(expected), "enqueued": 1}
    cur = await conn.execute(
        "SELECT delivery_key, job_id, reason, raw FROM broseph.ingress_quarantine"
    )
    rows = {row["delivery_key"]: row for row in await cur.fetchall()}
    assert set(rows) == set(expected)
    for key, fragment in expected.items():
        row = rows[key]
        assert fragment in row["reason"], (row["reason"], row["raw"][:200])
        job = failed[row["job_id"]]
        # Failed as unrecoverable with the same reason: no retry despite attempts 3.
        assert job.failedReason == row["reason"] and job.attemptsMade == 1
    records = await records_by_key(conn)
    assert list(records) == [support.delivery_key(queue, valid.id, valid.timestamp)]
    assert ingress_metric(queue, "quarantined") == len(expected)


async def test_startup_warns_when_redis_may_evict_queue_data(settings, tmp_path):
    with support.private_redis(tmp_path, policy="allkeys-lru") as server:
        cfg = support.ingress_settings(settings, support.unique_queue(), redis_url=server.url)
        with structlog.testing.capture_logs() as logs:
            async with support.running_ingress(cfg) as ingress:
                await support.wait_consuming(ingress)
    warnings = [e for e in logs if e["event"] == "ingress_redis_eviction_policy"]
    assert len(warnings) == 1 and warnings[0]["policy"] == "allkeys-lru"
    assert warnings[0]["log_level"] == "warning"


async def test_no_eviction_warning_with_noeviction(settings):
    queue = support.unique_queue()
    with structlog.testing.capture_logs() as logs:
        async with (
            support.producer(queue),
            support.running_ingress(support.ingress_settings(settings, queue)) as ingress,
        ):
            await support.wait_consuming(ingress)
    assert any(e["event"] == "ingress_started" for e in logs)
    assert not any(e["event"] == "ingress_redis_eviction_policy" for e in logs)


@pytest.mark.parametrize("name", sorted(support.live_routes()))
async def test_every_catalogued_job_type_arrives_from_node(conn, settings, name):
    queue = support.unique_queue()
    async with (
        support.producer(queue) as q,
        support.running_ingress(support.ingress_settings(settings, queue)),
    ):
        data = support.valid_data(name)
        job = support.node_publish(
            queue, [{"publish": support.NODE_PUBLISH[name], "payload": data}]
        )[0]

        async def acked() -> bool:
            return (await q.getJobCounts("completed"))["completed"] == 1

        await wait_until(acked)
    records = await records_by_key(conn)
    assert list(records) == [support.delivery_key(queue, job["id"], job["timestamp"])]
    assert records[next(iter(records))]["job_type"] == mapping.DEFAULT_ROUTES[name].job_type


def test_worker_connections_outlast_bullmqs_blocking_waits():
    # redis-py 8 times sockets out after 5 s; bullmq blocks up to 10 s for a delayed job.
    from broseph.ingress.bullmq import worker_redis_url

    assert worker_redis_url("redis://127.0.0.1:6379") == "redis://127.0.0.1:6379?socket_timeout=20"
    assert worker_redis_url("rediss://u:p@h:1/2?socket_timeout=3&ssl_cert_reqs=none") == (
        "rediss://u:p@h:1/2?socket_timeout=20&ssl_cert_reqs=none"
    )
    assert worker_redis_url("redis://h?socket_timeout=60") == "redis://h?socket_timeout=60"


async def test_private_payload_values_never_reach_logs(conn, settings):
    secret_body = "meet me at the secret place at 9"
    token = "fcm-device-token-abcdef123456"
    queue = support.unique_queue()
    cfg = support.ingress_settings(settings, queue)
    with structlog.testing.capture_logs() as logs:
        async with support.producer(queue) as q, support.running_ingress(cfg):
            pe = support.valid_data("ProcessEngagement")
            # Values where ids belong, and private fields the payload models refuse.
            await q.add("ProcessEngagement", {**pe, "groupId": token})
            await q.add("ProcessEngagement", {**pe, "body": secret_body, "token": token})
            await q.add("ProcessEngagement", pe)

            async def settled() -> bool:
                counts = await q.getJobCounts("failed", "completed")
                return counts == {"failed": 2, "completed": 1}

            await wait_until(settled)
    assert [e["event"] for e in logs].count("ingress_quarantined") == 2
    rendered = repr(logs)
    assert secret_body not in rendered and token not in rendered
    cur = await conn.execute("SELECT reason, raw FROM broseph.ingress_quarantine")
    rows = await cur.fetchall()
    assert all(token not in r["reason"] and secret_body not in r["reason"] for r in rows)
    assert any(secret_body in r["raw"] for r in rows)  # kept whole for the operator, not logged


async def test_a_database_outage_on_the_producers_last_attempt_delays_instead_of_failing(
    conn, settings, db_url
):
    async with support.ingress_behind_proxy(settings, db_url) as (proxy, queue, cfg):
        async with support.producer(queue) as q, support.running_ingress(cfg):
            await q.add("ProcessEngagement", support.valid_data("ProcessEngagement"))

            async def warm() -> bool:
                return len(await records_by_key(conn)) == 1

            await wait_until(warm)
            proxy.cut()
            # attempts 1: BullMQ itself would fail it on the first error and it would be lost to
            # Postgres. Our outage must not spend the producer's attempts.
            job = await q.add(
                "ProcessEngagement", support.valid_data("ProcessEngagement"), {"attempts": 1}
            )

            async def held_back() -> bool:
                j = await q.getJob(job.id)
                return await j.isDelayed()

            await wait_until(held_back, within=15, interval=0.02)
            held = await q.getJob(job.id)
            assert held.attemptsMade == 0 and not await held.isFailed()
            proxy.restore()
            key = support.delivery_key(queue, job.id, job.timestamp)

            async def arrived() -> bool:
                return key in await records_by_key(conn)

            await wait_until(arrived, within=20)


async def test_an_unexpected_error_is_retried_then_quarantined_never_lost(conn, settings, db_url):
    # A role that may write the quarantine but not enqueue: every ingest fails with a
    # permission error — not bad input, not an outage.
    role = f"ingress_limited_{uuid.uuid4().hex[:8]}"
    await conn.execute(f'CREATE ROLE "{role}" LOGIN')
    try:
        await conn.execute(f'GRANT USAGE ON SCHEMA broseph TO "{role}"')
        await conn.execute(f'GRANT SELECT, INSERT ON broseph.ingress_quarantine TO "{role}"')
        params = psycopg.conninfo.conninfo_to_dict(db_url)
        params["user"] = role
        limited = psycopg.conninfo.make_conninfo(**params)
        queue = support.unique_queue()
        cfg = support.ingress_settings(settings, queue, database_url=limited)
        async with support.producer(queue) as q, support.running_ingress(cfg) as ingress:
            options = {"attempts": 2, "backoff": {"type": "fixed", "delay": 200}}
            job = await q.add("ProcessEngagement", support.valid_data("ProcessEngagement"), options)

            async def failed() -> bool:
                return await (await q.getJob(job.id)).isFailed()

            await wait_until(failed)
            done = await q.getJob(job.id)
            outcomes = (await ingress.health()).outcomes
        assert done.attemptsMade == 2  # the producer's attempts were used first
        assert outcomes == {"error": 2, "quarantined": 1}
        cur = await conn.execute("SELECT reason FROM broseph.ingress_quarantine")
        reasons = [r["reason"] for r in await cur.fetchall()]
        assert reasons == [done.failedReason]
        assert reasons[0].startswith("ingest failed: InsufficientPrivilege")
        assert await records_by_key(conn) == {}
    finally:
        await conn.execute(f'DROP OWNED BY "{role}"')
        await conn.execute(f'DROP ROLE "{role}"')
