"""
The ingress as an operator runs it: `broseph ingress bullmq` as a subprocess, and the test
ingress (tests/ingress_app.py: the same, holding each job between the Postgres commit and the
BullMQ ack) killed with -9 there or stopped with SIGTERM mid-job; the `broseph ingress quarantine
list / replay` commands.
"""

from __future__ import annotations

import json
import signal
import subprocess
from typing import Any

from tests import ingress_support as support
from tests.conftest import wait_until


def base_env(db_url: str, queue: str, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": db_url,
        "REDIS_URL": support.REDIS_URL,
        "INGRESS_QUEUES": queue,
        "INGRESS_CONCURRENCY": "2",
        # Short locks so a killed ingress's job is redelivered within seconds, not 30 s (long
        # enough that a loaded CI machine does not lose a live lock).
        "INGRESS_LOCK_DURATION_MS": "3000",
        "INGRESS_STALLED_INTERVAL_MS": "1000",
        **extra,
    }


async def records(conn) -> list[dict[str, Any]]:
    cur = await conn.execute("SELECT id, idempotency_key, params FROM broseph.job_records")
    return await cur.fetchall()


def cli(*args: str, env: dict[str, str], cwd) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(support.BROSEPH), "ingress", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_a_crash_between_commit_and_ack_is_redelivered_and_yields_one_record(
    conn, db_url, tmp_path
):
    queue = support.unique_queue()
    env = base_env(db_url, queue)
    # The first holds each job 60 s after its commit (the test ingress); the second is the CLI.
    first = support.IngressProcess(tmp_path, env, "first", hold=60)
    second = support.IngressProcess(tmp_path, env, "second")
    try:
        async with support.producer(queue) as q:
            first.start()
            await first.wait_for("ingress_started")
            job = support.node_publish(
                queue,
                [{"publish": "engagement", "payload": support.valid_data("ProcessEngagement")}],
            )[0]
            key = support.delivery_key(queue, job["id"], job["timestamp"])
            # Committed in Postgres, not yet acknowledged in BullMQ: kill -9 right there.
            await first.wait_for("ingress_test_hold", job_id=job["id"])
            committed = await records(conn)
            assert [r["idempotency_key"] for r in committed] == [key]
            assert await (await q.getJob(job["id"])).isActive()
            first.kill(signal.SIGKILL)
            assert await first.wait_exit() == -signal.SIGKILL

            second.start()
            # BullMQ's stalled-job check gives the job back; the receipt makes it a no-op.
            await second.wait_for("ingress_duplicate", job_id=job["id"], within=30)

            async def acked() -> bool:
                return await (await q.getJob(job["id"])).isCompleted()

            await wait_until(acked)
            done = await q.getJob(job["id"])
            assert done.stalledCounter == 1  # redelivered by the stalled checker
            assert done.returnvalue == {"record_id": str(committed[0]["id"]), "duplicate": True}
            second.kill(signal.SIGTERM)
            assert await second.wait_exit() == 0
    finally:
        first.close()
        second.close()
    assert await records(conn) == committed  # still exactly one record
    cur = await conn.execute("SELECT count(*) AS n FROM broseph.ingress_receipts")
    assert (await cur.fetchone())["n"] == 1


async def test_sigterm_finishes_in_flight_jobs_then_closes(conn, db_url, tmp_path):
    queue = support.unique_queue()
    proc = support.IngressProcess(tmp_path, base_env(db_url, queue), hold=5)
    try:
        async with support.producer(queue) as q:
            proc.start()
            await proc.wait_for("ingress_started")
            # Held 5 s after commit: longer than its 3 s lock, so the lock must keep being
            # renewed while the ingress shuts down.
            in_flight = await q.add("ProcessEngagement", support.valid_data("ProcessEngagement"))
            await proc.wait_for("ingress_test_hold", job_id=in_flight.id)
            proc.kill(signal.SIGTERM)
            await proc.wait_for("ingress_stopping")
            later = await q.add("ProcessEngagement", support.valid_data("ProcessEngagement"))
            assert await proc.wait_exit() == 0
            # The in-flight job was committed AND acknowledged before the process closed …
            assert await (await q.getJob(in_flight.id)).isCompleted()
            # … and nothing new was taken after SIGTERM.
            assert await (await q.getJob(later.id)).isWaiting()
    finally:
        proc.close()
    events = [e["event"] for e in proc.events()]
    assert events.index("ingress_stopping") < events.index("ingress_stopped")
    keys = [r["idempotency_key"] for r in await records(conn)]
    assert keys == [support.delivery_key(queue, in_flight.id, in_flight.timestamp)]


async def test_quarantine_list_and_replay_after_fixing_the_mapping(
    conn, db_url, settings, tmp_path
):
    queue = support.unique_queue()
    cfg = support.ingress_settings(settings, queue)
    pe = support.valid_data("ProcessEngagement")
    async with support.producer(queue) as q, support.running_ingress(cfg):
        # A job name the mapping does not know yet, with its own field names.
        job = await q.add("EngagementRollup", {"groupId": pe["groupId"], "day": pe["localDate"]})

        async def quarantined() -> bool:
            return (await q.getJobCounts("failed"))["failed"] == 1

        await wait_until(quarantined)
    env = {"DATABASE_URL": db_url, "LOG_LEVEL": "WARNING"}
    listed = cli("quarantine", "list", env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "EngagementRollup" in listed.stdout and "unknown job name" in listed.stdout
    fields = listed.stdout.strip().split("\t")
    assert fields[2:5] == [queue, job.id, "EngagementRollup"]
    entry = {"id": int(fields[0])}

    still = cli("quarantine", "replay", str(entry["id"]), env=env, cwd=tmp_path)
    assert still.returncode == 1 and "still rejected: unknown job name" in still.stderr
    assert await records(conn) == []

    fixed = {
        **env,
        "INGRESS_JOB_MAP": json.dumps(
            {
                "EngagementRollup": {
                    "job_type": "ProcessEngagement",
                    "fields": {"groupId": "group_id", "day": "local_date"},
                }
            }
        ),
    }
    replayed = cli("quarantine", "replay", str(entry["id"]), env=fixed, cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stderr
    record_id = replayed.stdout.strip()
    rows = await records(conn)
    assert [str(r["id"]) for r in rows] == [record_id]
    assert rows[0]["idempotency_key"] == support.delivery_key(queue, job.id, job.timestamp)
    assert rows[0]["params"] == {"group_id": pe["groupId"], "local_date": pe["localDate"]}

    again = cli("quarantine", "replay", str(entry["id"]), env=fixed, cwd=tmp_path)
    assert again.stdout.strip() == f"{record_id} (already replayed)"
    assert len(await records(conn)) == 1
    assert cli("quarantine", "list", env=env, cwd=tmp_path).stdout.strip() == "no quarantined jobs"
    history = json.loads(cli("quarantine", "list", "--all", "--json", env=env, cwd=tmp_path).stdout)
    assert history["id"] == entry["id"] and history["record_id"] == record_id
    assert history["replayed_at"] is not None and history["job_id"] == job.id


def test_a_broken_job_map_stops_the_ingress_at_startup(tmp_path, db_url):
    env = {
        **base_env(db_url, support.unique_queue()),
        "INGRESS_JOB_MAP": '{"SendPush": {"jobtype": "SendNotification"}}',
    }
    done = cli("bullmq", env=env, cwd=tmp_path)
    assert done.returncode == 2
    assert "INGRESS_JOB_MAP['SendPush']" in done.stderr
