"""
Finding jobs by filter, page by page (`inspect.find` over broseph.find_records, 0018), and bulk
retry / cancel of what a filter matches (`broseph.ops.bulk`): the shared implementation of
`broseph jobs list / retry-all / cancel-all` and the dashboard.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import os
import subprocess
import uuid
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from broseph.ops import bulk, inspect
from tests import dashboard_support as support
from tests.conftest import venv_bin

T0 = datetime.datetime(2026, 11, 20, 7, 0, tzinfo=datetime.UTC)
GROUPS = [uuid.UUID(int=g + 1) for g in range(5)]
USERS = [uuid.UUID(int=1000 + u) for u in range(6)]


async def _seed(conn: Any) -> list[dict[str, Any]]:
    """
    90 records over three job types, every status, five groups, six users; creation times with
    ties (several records per second) so the id breaks them.
    """
    made: list[uuid.UUID] = []
    for i in range(30):
        cur = await conn.execute(
            "SELECT broseph.enqueue('GeneratePrompt', %s, %s) AS id",
            (Jsonb({"group_id": str(GROUPS[i % 5]), "local_date": "2026-11-20"}), f"prompt:{i}"),
        )
        made.append((await cur.fetchone())["id"])
        cur = await conn.execute(
            "SELECT broseph.enqueue('SendNotification', %s) AS id",
            (Jsonb({"user_id": str(USERS[i % 6]), "type": "new_prompt",
                    "data": {"group_id": str(GROUPS[i % 5]),
                             "prompt_id": str(uuid.UUID(int=9000 + i))}}),),
        )  # fmt: skip
        made.append((await cur.fetchone())["id"])
        cur = await conn.execute(
            "SELECT broseph.enqueue('ProcessEngagement', %s) AS id",
            (Jsonb({"group_id": str(GROUPS[(i + 2) % 5]), "local_date": f"2026-10-{i + 1:02d}"}),),
        )
        made.append((await cur.fetchone())["id"])
    statuses = itertools.cycle(inspect.RECORD_STATUSES)
    for i, record_id in enumerate(made):
        await conn.execute(
            "UPDATE broseph.job_records SET status = %s, created_at = %s WHERE id = %s",
            (next(statuses), T0 + datetime.timedelta(seconds=i // 4), record_id),
        )
    cur = await conn.execute("SELECT * FROM broseph.job_records")
    return list(await cur.fetchall())


def _expected(rows: list[dict[str, Any]], flt: inspect.Filter) -> list[uuid.UUID]:
    def keep(r: dict[str, Any]) -> bool:
        return (
            (not flt.statuses or r["status"] in flt.statuses)
            and (flt.job_type is None or r["job_type"] == flt.job_type)
            and (flt.since is None or r["created_at"] >= flt.since)
            and (flt.until is None or r["created_at"] < flt.until)
            and (flt.group_id is None or r["group_id"] == flt.group_id)
            and (flt.user_id is None or r["user_id"] == flt.user_id)
            and (flt.idempotency_key is None or r["idempotency_key"] == flt.idempotency_key)
        )

    kept = sorted((r for r in rows if keep(r)), key=lambda r: (r["created_at"], r["id"]))
    return [r["id"] for r in reversed(kept)]


FILTERS = [
    inspect.Filter(),
    inspect.Filter(statuses=("failed",)),
    inspect.Filter(statuses=("pending", "retrying"), job_type="GeneratePrompt"),
    inspect.Filter(job_type="SendNotification", since=T0 + datetime.timedelta(seconds=5)),
    inspect.Filter(
        since=T0 + datetime.timedelta(seconds=3), until=T0 + datetime.timedelta(seconds=15)
    ),
    inspect.Filter(until=T0 + datetime.timedelta(seconds=9), statuses=("completed",)),
    inspect.Filter(group_id=GROUPS[1]),
    inspect.Filter(group_id=GROUPS[2], job_type="ProcessEngagement", statuses=("cancelled",)),
    inspect.Filter(user_id=USERS[3]),
    inspect.Filter(user_id=USERS[0], group_id=GROUPS[0]),
    inspect.Filter(idempotency_key="prompt:7"),
    inspect.Filter(idempotency_key="prompt:7", statuses=("failed",)),
    inspect.Filter(job_type="NotifyMembers"),
    inspect.Filter(group_id=uuid.UUID(int=999)),
]


@pytest.mark.parametrize("page_size", [1, 7, 500])
async def test_pages_walk_every_match_once_in_order(conn, page_size):
    rows = await _seed(conn)
    for flt in FILTERS:
        seen: list[uuid.UUID] = []
        after = None
        while True:
            page = await inspect.find(conn, flt, after=after, limit=page_size)
            seen += [r["id"] for r in page.rows]
            assert len(page.rows) <= page_size
            if page.next is None:
                break
            # The cursor survives a round trip through its text form (links, --after).
            after = inspect.Cursor.parse(page.next.token())
        assert seen == _expected(rows, flt), flt
        assert await inspect.count(conn, flt) == len(seen), flt
    assert await inspect.count(conn, inspect.Filter(), cap=10) == 10


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"status": "done"}, "status 'done': one of pending"),
        ({"group": "g1"}, "group 'g1' is not a uuid"),
        ({"user": "' OR 1=1 --"}, "is not a uuid"),
        ({"since": "yesterday"}, "since 'yesterday': use 30m"),
        ({"until": "99999999999999d"}, "until '99999999999999d': use"),
        ({"key": "a\x00b"}, "idempotency_key: at most 1000 characters, no NUL"),
        ({"key": "k" * 5000}, "idempotency_key: at most 1000 characters"),
        ({"job_type": "x" * 1001}, "job_type: at most 1000 characters"),
    ],
)
def test_bad_filters_are_refused_with_the_field_named(fields, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        inspect.parse_filter(**fields)


def test_relative_times_too_far_back_are_a_clear_error_not_a_crash():
    # timedelta(days=1e14) overflows: it used to escape as OverflowError from `jobs list`.
    with pytest.raises(ValueError, match="too far back"):
        inspect.parse_since("99999999999999d")
    with pytest.raises(ValueError, match="too far back"):
        inspect.parse_since("5000000w")


@pytest.mark.parametrize("token", ["", "garbage", "2026-11-20T07:00:00_not-a-uuid", "_" * 300])
def test_a_foreign_cursor_is_refused(token):
    with pytest.raises(ValueError, match="is not one this service made"):
        inspect.Cursor.parse(token)


async def test_unicode_and_odd_values_match_nothing_rather_than_fail(conn):
    await _seed(conn)
    for flt in (
        inspect.Filter(idempotency_key="prompt:7 ✓ 🚀"),
        inspect.Filter(job_type="Génère'; DROP TABLE broseph.job_records; --"),
        inspect.Filter(until=datetime.datetime(1, 1, 2, tzinfo=datetime.UTC)),
        inspect.Filter(since=datetime.datetime(9999, 12, 31, tzinfo=datetime.UTC)),
    ):
        assert (await inspect.find(conn, flt)).rows == []
        assert await inspect.count(conn, flt) == 0
    everything = inspect.Filter(since=datetime.datetime(1, 1, 1, tzinfo=datetime.UTC))
    # A page is never larger than MAX_PAGE, whatever is asked for.
    assert len((await inspect.find(conn, everything, limit=10**9)).rows) == 90
    assert len((await inspect.find(conn, everything, limit=-5)).rows) == 1


async def test_bulk_retry_counts_first_and_touches_only_what_it_counted(conn):
    await support.install_nap(conn)
    failing = await support.naps(conn, 23, tag="bulk")
    await support.fail(conn, failing)
    done = await support.naps(conn, 3)
    await support.complete(conn, done)
    flt = inspect.Filter(job_type="TestNap")
    preview = await bulk.preview(conn, "retry", flt)
    assert preview.count == 23 and preview.filter.statuses == ("failed",)

    late = await support.naps(conn, 2, tag="late")  # failed after the count: not touched
    await support.fail(conn, late)
    listener = await psycopg.AsyncConnection.connect(conn.info.dsn, autocommit=True)
    held = await psycopg.AsyncConnection.connect(conn.info.dsn)
    try:
        await listener.execute("LISTEN procrastinate_any_queue_v1")
        # Another session holds one of the jobs: it is skipped, never waited for.
        await held.execute(
            "SELECT 1 FROM procrastinate_jobs WHERE id ="
            " (SELECT procrastinate_job_id FROM broseph.job_records WHERE id = %s) FOR UPDATE",
            (failing[0],),
        )
        outcome = await asyncio.wait_for(
            bulk.apply(conn, "retry", flt, as_of=preview.as_of, batch=10), 10
        )
        await held.rollback()
        notified = [n async for n in listener.notifies(timeout=0.5)]
    finally:
        await held.close()
        await listener.close()
    assert (outcome.done, outcome.skipped) == (22, 1)
    assert await support.statuses(conn, failing) == {"retrying": 22, "failed": 1}
    assert await support.statuses(conn, late) == {"failed": 2}
    assert await support.statuses(conn, done) == {"completed": 3}
    # Workers are woken once per queue and batch of ten, not once per job.
    assert len(notified) == 3
    cur = await conn.execute(
        "SELECT count(*) AS n FROM procrastinate_events e JOIN broseph.job_records r"
        " ON r.procrastinate_job_id = e.job_id WHERE r.id = ANY(%s) AND e.type = 'retried'",
        (failing,),
    )
    assert (await cur.fetchone())["n"] == 22


async def test_bulk_cancel_cancels_waiting_jobs_and_asks_running_ones_to_abort(conn):
    await support.install_nap(conn)
    waiting = await support.naps(conn, 5)
    running = await support.naps(conn, 2)
    await support.take(conn, running)
    finished = await support.naps(conn, 1)
    await support.complete(conn, finished)
    preview = await bulk.preview(conn, "cancel", inspect.Filter())
    assert preview.count == 7
    assert (await bulk.preview(conn, "cancel", inspect.Filter(statuses=("failed",)))).count == 0
    outcome = await bulk.apply(conn, "cancel", inspect.Filter(), as_of=preview.as_of)
    assert (outcome.done, outcome.abort_requested, outcome.skipped) == (5, 2, 0)
    assert await support.statuses(conn, waiting) == {"cancelled": 5}
    cur = await conn.execute(
        "SELECT bool_and(abort_requested) AS asked FROM procrastinate_jobs WHERE id IN"
        " (SELECT procrastinate_job_id FROM broseph.job_records WHERE id = ANY(%s))",
        (running,),
    )
    assert (await cur.fetchone())["asked"] is True
    assert await support.statuses(conn, finished) == {"completed": 1}


async def test_cli_filters_pages_and_bulk_retry_as_an_operator_types_them(conn, db_url):
    await support.install_nap(conn)

    def broseph(url: str, *args: str, input: str | None = None) -> Any:
        env = {**os.environ, "DATABASE_URL": url}
        return subprocess.run(
            [str(venv_bin("broseph")), *args],
            env=env, input=input, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    group = GROUPS[0]
    failing = await support.naps(conn, 3)
    await support.fail(conn, failing, error="OpenAIError: 429")
    await conn.execute(
        "SELECT broseph.enqueue('GeneratePrompt', %s, 'prompt:g0')",
        (Jsonb({"group_id": str(group), "local_date": "2026-11-20"}),),
    )
    listed = await asyncio.to_thread(
        broseph, db_url, "jobs", "list", "--group", str(group), "--key", "prompt:g0"
    )
    assert listed.returncode == 0, listed.stderr
    assert "1 job(s)" in listed.stdout and "GeneratePrompt" in listed.stdout
    first = await asyncio.to_thread(
        broseph, db_url, "jobs", "list", "--status", "failed", "--limit", "2"
    )
    assert first.returncode == 0, first.stderr
    cursor = first.stdout.rsplit("more: --after ", 1)[1].strip()
    rest = await asyncio.to_thread(
        broseph, db_url, "jobs", "list", "--status", "failed", "--after", cursor, "--json"
    )
    assert rest.returncode == 0, rest.stderr
    assert '"OpenAIError: 429"' in rest.stdout and rest.stdout.count('"id"') == 1
    bad = await asyncio.to_thread(broseph, db_url, "jobs", "list", "--group", "nope")
    assert bad.returncode == 2 and "group 'nope' is not a uuid" in bad.stderr

    refused = await asyncio.to_thread(
        broseph, db_url, "jobs", "retry-all", "--type", "TestNap", input="n\n"
    )
    assert refused.returncode == 1 and "3 job(s) match (failed" in refused.stdout
    assert await support.statuses(conn, failing) == {"failed": 3}
    retried = await asyncio.to_thread(
        broseph, db_url, "jobs", "retry-all", "--type", "TestNap", "--since", "1h", "--yes"
    )
    assert retried.returncode == 0, retried.stderr
    assert "retried 3; skipped 0" in retried.stdout
    assert await support.statuses(conn, failing) == {"retrying": 3}
    cancelled = await asyncio.to_thread(
        broseph, db_url, "jobs", "cancel-all", "--status", "pending,retrying", "--yes"
    )
    assert cancelled.returncode == 0, cancelled.stderr
    assert "cancelled 4" in cancelled.stdout


@pytest.mark.parametrize("role", ["anon", "authenticated"])
async def test_client_roles_cannot_call_find_records(conn, role):
    await _seed(conn)
    async with conn.transaction():
        await conn.execute(f"SET LOCAL ROLE {role}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            async with conn.transaction():
                await conn.execute("SELECT count(*) FROM broseph.find_records()")
    cur = await conn.execute("SELECT count(*) AS n FROM broseph.find_records()")
    assert (await cur.fetchone())["n"] == 90
