"""
ProcessEngagement without local_date (migrations/0021): enqueue fills in the group's local date —
in SQL, set-based, for every producer — before the coalesce key and lock are built; the job then
runs for that day. A group that does not exist, or whose stored zone PostgreSQL does not know,
reads as UTC; the former fails when it runs, as a dated job for a missing group does.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg.types.json import Jsonb

from broseph import enqueue
from broseph.jobs.process_engagement import ProcessEngagement
from tests import factories
from tests.conftest import wait_until
from tests.profiles import CLIENT_ROLES, as_client

UTC = datetime.UTC
# Far apart: at any instant at least one of them is on another date than UTC.
ZONES = ("Pacific/Kiritimati", "Pacific/Pago_Pago", "Europe/Berlin")


async def _now(conn: psycopg.AsyncConnection[Any]) -> datetime.datetime:
    cur = await conn.execute("SELECT now() AS now")
    return (await cur.fetchone())["now"]


def _day(at: datetime.datetime, zone: str) -> str:
    return at.astimezone(ZoneInfo(zone)).date().isoformat()


async def _groups(conn: psycopg.AsyncConnection[Any]) -> dict[str, uuid.UUID]:
    """
    A group per zone, one whose stored zone PostgreSQL does not know ("Mars/Olympus", stored
    past the CHECK as an app-owned table might hold it), and an id no group has.
    """
    groups = {zone: await factories.group(conn, time_zone=zone) for zone in ZONES}
    groups["Mars/Olympus"] = await factories.group(conn, name="Mars")
    await conn.execute("ALTER TABLE public.groups DROP CONSTRAINT groups_time_zone_check")
    await conn.execute(
        "UPDATE public.groups SET time_zone = 'Mars/Olympus' WHERE id = %s",
        (groups["Mars/Olympus"],),
    )
    groups["missing"] = uuid.uuid4()
    return groups


def _expected(zone: str, at: datetime.datetime) -> str:
    return _day(at, "UTC" if zone in ("Mars/Olympus", "missing") else zone)


async def test_enqueue_fills_in_each_groups_local_date(conn):
    groups = await _groups(conn)
    dates = {_day(await _now(conn), zone) for zone in ZONES[:2]} | {_day(await _now(conn), "UTC")}
    assert len(dates) >= 2  # the zones tell a date taken in the wrong zone apart
    async with conn.transaction():
        at = await _now(conn)
        ids = {}
        for zone, gid in groups.items():
            # Upper-case ids are made canonical before the group is looked up.
            params = {"group_id": str(gid).upper()}
            if zone == ZONES[0]:
                params["local_date"] = None  # JSON null reads as absent
            cur = await conn.execute(
                "SELECT broseph.enqueue('ProcessEngagement', %s) AS id", (Jsonb(params),)
            )
            ids[zone] = (await cur.fetchone())["id"]
    for zone, rid in ids.items():
        cur = await conn.execute(
            "SELECT r.params, r.coalesce_key, j.lock, j.args FROM broseph.job_records r"
            " JOIN public.procrastinate_jobs j ON j.id = r.procrastinate_job_id WHERE r.id = %s",
            (rid,),
        )
        row = await cur.fetchone()
        day = _expected(zone, at)
        gid = str(groups[zone])
        assert row["params"] == {"group_id": gid, "local_date": day}, zone
        # The keys are built from the filled-in params: coalescing per group and day holds.
        assert row["coalesce_key"] == row["lock"] == f"ProcessEngagement:{gid}:{day}", zone
        assert row["args"]["local_date"] == day


async def test_enqueue_many_fills_in_dates_set_based_on_both_paths(conn):
    groups = await _groups(conn)
    order = list(groups)
    # 10 rows: checked row by row; 40 rows: through the set-based screen (migrations/0015).
    for size in (10, 40):
        await conn.execute("DELETE FROM procrastinate_jobs")
        await conn.execute("DELETE FROM broseph.job_records")
        params: list[dict[str, Any]] = []
        for i in range(size):
            zone = order[i % len(order)]
            p: dict[str, Any] = {"group_id": str(groups[zone])}
            if i % 7 == 3:
                p["local_date"] = "2026-03-01"  # given dates are kept
            params.append(p)
        async with conn.transaction():
            at = await _now(conn)
            cur = await conn.execute(
                "SELECT broseph.enqueue_many('ProcessEngagement', %s::jsonb[]) AS ids",
                ([Jsonb(p) for p in params],),
            )
            ids = (await cur.fetchone())["ids"]
        cur = await conn.execute("SELECT id, params FROM broseph.job_records")
        stored = {row["id"]: row["params"] for row in await cur.fetchall()}
        expected = []
        for i, p in enumerate(params):
            day = p.get("local_date") or _expected(order[i % len(order)], at)
            expected.append({"group_id": p["group_id"], "local_date": day})
        assert [stored[rid] for rid in ids] == expected, size
        # One job per group and day: the other rows coalesced into it.
        assert len(stored) == len({(e["group_id"], e["local_date"]) for e in expected}) < size


async def test_a_legacy_job_coalesces_with_the_triggers_job_for_the_same_day(conn):
    gid = await factories.group(conn, time_zone=ZONES[0])
    uid = await factories.user(conn)
    await factories.member(conn, gid, uid)
    await factories.message(conn, gid, uid)  # the trigger queues (group, local today)
    cur = await conn.execute(
        "SELECT id, params FROM broseph.job_records WHERE job_type = 'ProcessEngagement'"
    )
    [trigger_job] = await cur.fetchall()
    cur = await conn.execute(
        "SELECT broseph.enqueue('ProcessEngagement', jsonb_build_object('group_id', %s::text))"
        " AS id",
        (gid,),
    )
    assert (await cur.fetchone())["id"] == trigger_job["id"]
    # The Python face leaves the date out and gets the same.
    async with conn.transaction():
        rid = await enqueue.enqueue(conn, ProcessEngagement(group_id=gid))
    assert rid == trigger_job["id"]
    # Another day is another job.
    cur = await conn.execute(
        "SELECT broseph.enqueue('ProcessEngagement', jsonb_build_object('group_id', %s::text,"
        " 'local_date', '2026-03-01')) AS id",
        (gid,),
    )
    assert (await cur.fetchone())["id"] != trigger_job["id"]


async def _status(conn: psycopg.AsyncConnection[Any], rid: uuid.UUID) -> dict[str, Any]:
    cur = await conn.execute(
        "SELECT status, attempts, last_error, params FROM broseph.job_records WHERE id = %s",
        (rid,),
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def _enqueue(conn: psycopg.AsyncConnection[Any], params: dict[str, Any]) -> uuid.UUID:
    cur = await conn.execute(
        "SELECT broseph.enqueue('ProcessEngagement', %s) AS id", (Jsonb(params),)
    )
    return (await cur.fetchone())["id"]


async def test_a_legacy_job_runs_for_its_day_and_a_missing_group_fails_as_a_dated_one(
    conn, start_worker
):
    gid = await factories.group(conn, time_zone=ZONES[1])
    a, b = await factories.user(conn, name="A"), await factories.user(conn, name="B")
    for uid in (a, b):
        await factories.member(conn, gid, uid)
    await factories.message(conn, gid, a)
    await conn.execute("DELETE FROM procrastinate_jobs WHERE status = 'todo'")  # the trigger's
    legacy = await _enqueue(conn, {"group_id": str(gid)})
    missing = uuid.uuid4()
    undated = await _enqueue(conn, {"group_id": str(missing)})
    dated = await _enqueue(conn, {"group_id": str(missing), "local_date": "2026-03-01"})
    await start_worker()

    async def settled() -> bool:
        statuses = [(await _status(conn, rid))["status"] for rid in (legacy, undated, dated)]
        return set(statuses) <= {"completed", "failed"}

    await wait_until(settled, within=30)
    done = await _status(conn, legacy)
    assert done["status"] == "completed"
    cur = await conn.execute(
        "SELECT message_count, member_count FROM public.group_engagement_daily"
        " WHERE group_id = %s AND local_date = %s",
        (gid, done["params"]["local_date"]),
    )
    assert await cur.fetchone() == {"message_count": 1, "member_count": 2}
    # A missing group: failed at once (permanent), exactly as the job that named its date.
    for rid in (undated, dated):
        row = await _status(conn, rid)
        assert (row["status"], row["attempts"]) == ("failed", 1), row
        assert row["last_error"].endswith(f"group {missing} not found"), row


async def test_a_stored_job_without_its_date_fails_with_a_clear_reason(conn, start_worker):
    gid = await factories.group(conn)
    rid = await _enqueue(conn, {"group_id": str(gid), "local_date": "2026-03-01"})
    # A row written around broseph.enqueue (by hand, by an old tool): no local_date. The
    # record's params are what the job reads.
    await conn.execute("UPDATE broseph.job_records SET params = params - 'local_date'")
    await conn.execute("UPDATE procrastinate_jobs SET args = args - 'local_date'")
    await start_worker()

    async def failed() -> bool:
        return (await _status(conn, rid))["status"] == "failed"

    await wait_until(failed, within=30)
    row = await _status(conn, rid)
    assert row["attempts"] == 1 and "local_date missing" in row["last_error"], row


async def test_service_role_gets_the_default_on_both_profiles_and_clients_cannot_call_it(
    profile_conn, profile_db_url
):
    # enqueue reads the group's zone as its owner (SECURITY DEFINER), whatever the producer's
    # role may read of public.groups; through the RPC wrapper (migrations/0017) too.
    gid = await factories.group(profile_conn, time_zone=ZONES[0])
    async with await psycopg.AsyncConnection.connect(profile_db_url) as producer:
        async with producer.transaction():
            await as_client(producer, "service_role")
            cur = await producer.execute(
                "SELECT now(), broseph.enqueue('ProcessEngagement',"
                " jsonb_build_object('group_id', %s::text)),"
                " public.broseph_enqueue('ProcessEngagement',"
                " jsonb_build_object('group_id', %s::text, 'local_date', NULL))",
                (gid, gid),
            )
            at, direct, rpc = await cur.fetchone()  # type: ignore[misc]
        assert direct == rpc  # the same group and day: coalesced
        for role in CLIENT_ROLES:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                async with producer.transaction():
                    await as_client(producer, role)
                    await producer.execute(
                        "SELECT broseph.with_defaults('{}'::jsonb, ARRAY['{}'::jsonb])"
                    )
    row = await _status(profile_conn, direct)
    assert row["params"] == {"group_id": str(gid), "local_date": _day(at, ZONES[0])}
