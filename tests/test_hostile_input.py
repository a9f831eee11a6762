"""
Hostile input: a storm of generated calls of `broseph.enqueue` / `broseph.enqueue_many` over
every argument — wrong types, sizes, unicode, extremes (non-finite and out-of-range times,
megabyte strings, NULLs, huge and negative numbers, nested JSON, upper-case ids) — against a
running worker.

Each call is either refused — SQLSTATE 22023 naming the argument in `diag.column_name`, a short
message, nothing written — or accepted, and then its job reaches a terminal state. The worker
stays alive throughout, and a canary job enqueued after the storm completes.

The database comes from the `db_url` fixture (and the worker from `start_worker`), so the same
storm runs against any database profile those fixtures provide. Integers beyond 32 bits and
text with NUL characters cannot reach the functions at all (Postgres refuses them while reading
the arguments); the Python face refuses those by name (tests/test_enqueue_arguments.py).
"""

from __future__ import annotations

import asyncio
import datetime
import random
import uuid
from typing import Any

import psycopg
import psycopg_pool.base
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from broseph import jobs
from broseph.jobs.base import field_spec
from tests import factories, payload_strategies
from tests.conftest import wait_until
from tests.enqueue_calls import ARGUMENTS, Answer, Raw, attempt_sync
from tests.payload_strategies import HUGE, JSON, TEXT


@pytest.fixture
def db_url(profile_db_url: str) -> str:
    """
    Security tests run on both profiles (tests/profiles.py): plain PostgreSQL and Supabase-like,
    where the worker and the storm connect as Supabase's non-superuser postgres.
    """
    return profile_db_url


EXAMPLES = 1100
TERMINAL = ("completed", "failed", "cancelled")
SPECS = {name: field_spec(job_type.payload) for name, job_type in jobs.CATALOGUE.items()}
NOW = datetime.datetime.now(datetime.UTC)

TIMES = st.one_of(
    st.sampled_from(
        [
            Raw("infinity"),
            Raw("-infinity"),
            Raw("0044-03-15 12:00:00+00 BC"),
            Raw("0001-01-01 00:00:00+00"),
            Raw("1999-12-31 23:59:59+00"),
            Raw("2000-01-01 00:00:00+00"),
            Raw("9999-12-31 23:59:59+00"),
            Raw("294276-12-31 23:59:59+00"),
        ]
    ),
    st.timedeltas(datetime.timedelta(days=-400), datetime.timedelta(days=400)).map(
        lambda d: NOW + d
    ),
    st.datetimes(timezones=st.just(datetime.UTC)),
)
PRIORITIES = st.one_of(
    st.integers(-100, 100),
    st.integers(-(2**31), 2**31 - 1),
    st.sampled_from([10_000_000, 10_000_001, -10_000_000, -10_000_001, 2**31 - 1, -(2**31)]),
)
VALID_KEYS = st.one_of(st.sampled_from(["k1", "k2", "k3"]), st.uuids().map(str))
KEYS = st.one_of(
    st.sampled_from(["k1", "k2", "k3", "", "k" * 500, "k" * 501]),
    st.uuids().map(str),
    TEXT,
    HUGE,
)
RETRY_VALUES = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(-1e6, 1e6),
    st.sampled_from([0, 1, 1000, 1001, 86_400, 86_401, "fixed", "exponential", "linear", None]),
    JSON,
)
RETRIES = st.one_of(
    JSON,
    st.dictionaries(
        st.sampled_from(["max_attempts", "backoff_seconds", "backoff_type", "attempts"]),
        RETRY_VALUES,
        max_size=3,
    ),
)
SOURCES = st.one_of(
    st.sampled_from(["api", "", "s" * 64, "s" * 65, "two\nlines", "tab\there"]), TEXT, HUGE
)


_ABSENT = object()


def _argument(
    valid: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any], *, default: bool = True
) -> Any:
    """
    An argument: left out (its default), a valid value, or a hostile one (NULL included) — about
    a fifth of the time, so that calls with every argument valid are common too.
    """
    modes = ["default"] * 4 * default + ["valid"] * 4 + ["hostile"] * (2 if default else 1)
    return st.sampled_from(modes).flatmap(
        lambda mode: st.just(_ABSENT) if mode == "default"
        else valid if mode == "valid" else st.one_of(st.none(), hostile)
    )  # fmt: skip


VALID_TIMES = st.timedeltas(datetime.timedelta(days=-400), datetime.timedelta(days=365)).map(
    lambda d: NOW + d
)
VALID_RETRIES = st.fixed_dictionaries(
    {},
    optional={
        "max_attempts": st.integers(1, 1000),
        "backoff_seconds": st.one_of(st.integers(0, 86_400), st.floats(0, 86_400)),
        "backoff_type": st.sampled_from(["fixed", "exponential"]),
    },
)


@st.composite
def _params(draw: st.DrawFn, job_type: Any, subjects: list[str]) -> Any:
    spec = SPECS.get(job_type) if isinstance(job_type, str) else None
    if spec is None:
        return draw(st.one_of(JSON, payload_strategies.valid(SPECS["ProcessEngagement"])))
    valid = payload_strategies.valid(spec)
    params = draw(st.one_of(valid, valid, valid, payload_strategies.hostile(spec)))
    # Now and then the payload names rows that exist, so handlers do real work.
    if isinstance(params, dict) and draw(st.booleans()):
        for key in ("group_id", "user_id"):
            if key in params:
                params[key] = draw(st.sampled_from(subjects))
    return params


@st.composite
def calls(draw: st.DrawFn, subjects: list[str]) -> tuple[str, dict[str, Any]]:
    job_type = draw(
        st.sampled_from(["valid"] * 6 + ["hostile"]).flatmap(
            lambda mode: st.sampled_from(sorted(SPECS)) if mode == "valid"
            else st.one_of(st.none(), TEXT, HUGE, st.sampled_from(
                ["processengagement", "ProcessEngagement ", "broseph.enqueue"]))
        )
    )  # fmt: skip
    function = draw(st.sampled_from(["enqueue", "enqueue_many"]))
    args: dict[str, Any] = {"job_type": job_type}
    if function == "enqueue":
        args["params"] = draw(_argument(_params(job_type, subjects), st.nothing(), default=False))
        args["idempotency_key"] = draw(_argument(VALID_KEYS, KEYS))
    else:
        size = draw(st.one_of(st.integers(0, 4), st.integers(16, 20)))
        element = st.one_of(*[_params(job_type, subjects)] * 5, st.none())
        elements = st.lists(element, min_size=size, max_size=size)
        args["params"] = draw(_argument(elements, st.nothing(), default=False))
        length = draw(st.sampled_from([size, size, size, size + 1, max(size - 1, 0)]))
        args["idempotency_keys"] = draw(_argument(
            st.lists(st.one_of(VALID_KEYS, st.none()), min_size=size, max_size=size),
            st.lists(st.one_of(KEYS, st.none()), min_size=length, max_size=length),
        ))  # fmt: skip
    args["run_at"] = draw(_argument(VALID_TIMES, TIMES))
    args["priority"] = draw(_argument(st.integers(-100, 100), PRIORITIES))
    args["source"] = draw(_argument(st.sampled_from(["api", "sql", "supabase-rpc"]), SOURCES))
    args["retry"] = draw(_argument(VALID_RETRIES, RETRIES))
    return function, {k: v for k, v in args.items() if v is not _ABSENT}


def _names_an_argument(answer: Answer) -> bool:
    column = answer.column or ""
    return any(column == a or column.startswith((a + ".", a + "[")) for a in ARGUMENTS)


def _storm(
    db_url: str, subjects: list[str], accepted: set[uuid.UUID], tally: dict[str, int]
) -> None:
    with psycopg.connect(db_url) as conn:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(call=calls(subjects))
        def one_call(call: tuple[str, dict[str, Any]]) -> None:
            function, args = call
            answer = attempt_sync(conn, function, args)
            if answer.sqlstate == "40001":  # a coalesced job changed hands meanwhile: try again
                answer = attempt_sync(conn, function, args)
            tally["calls"] += 1
            if answer.accepted:
                assert answer.ids is not None
                accepted.update(answer.ids)
                tally["accepted"] += 1
                return
            assert answer.sqlstate == "22023", (answer, function, _short(args))
            assert _names_an_argument(answer), (answer, function, _short(args))
            assert answer.message is not None and len(answer.message) < 500, answer.message

        one_call()


def _short(args: dict[str, Any]) -> dict[str, str]:
    return {k: repr(v)[:200] for k, v in args.items()}


async def _statuses(conn: psycopg.AsyncConnection[Any]) -> dict[uuid.UUID, str]:
    cur = await conn.execute("SELECT id, status FROM broseph.job_records")
    return {row["id"]: row["status"] for row in await cur.fetchall()}


@pytest.fixture
def own_pool_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    psycopg_pool draws its connections' lifetime jitter from the global `random` while the worker
    opens connections — which hypothesis, generating calls in another thread meanwhile, would
    take for a strategy using `random`. The pool gets a generator of its own.
    """
    monkeypatch.setattr(psycopg_pool.base, "random", random.Random().random)


@pytest.mark.usefixtures("own_pool_jitter")
async def test_a_storm_of_hostile_calls_never_stops_the_worker(db_url, conn, start_worker):
    group = await factories.group(conn, name="Storm", time_zone="Pacific/Chatham")
    user = await factories.user(conn, name="Bo")  # not a member: notifications skip, add nothing
    subjects = [str(group), str(user), str(group).upper()]
    worker = await start_worker()

    accepted: set[uuid.UUID] = set()
    tally = {"calls": 0, "accepted": 0}
    await asyncio.to_thread(_storm, db_url, subjects, accepted, tally)
    assert tally["calls"] >= 1000, tally
    # Both outcomes happened plenty (the storm is not all noise, nor all valid).
    assert 100 <= tally["accepted"] <= tally["calls"] - 300, tally
    assert not worker.task.done(), "the worker stopped during the storm"

    # Refused calls wrote nothing: every record is one an accepted call returned.
    statuses = await _statuses(conn)
    assert set(statuses) == accepted
    cur = await conn.execute("SELECT count(*) AS n FROM procrastinate_jobs")
    assert (await cur.fetchone())["n"] == len(accepted)

    # Jobs accepted for later (up to a year ahead) are due now.
    await conn.execute(
        "UPDATE procrastinate_jobs SET scheduled_at = now()"
        " WHERE status = 'todo' AND scheduled_at > now()"
    )

    async def all_terminal() -> bool:
        if worker.task.done():
            return True
        return all(s in TERMINAL for s in (await _statuses(conn)).values())

    await wait_until(all_terminal, within=120, interval=0.5)
    assert not worker.task.done(), "the worker stopped"
    unfinished = {r: s for r, s in (await _statuses(conn)).items() if s not in TERMINAL}
    assert not unfinished

    cur = await conn.execute(
        "SELECT broseph.enqueue('ProcessEngagement', %s) AS id",
        (Jsonb({"group_id": str(group), "local_date": "2031-01-01"}),),
    )
    canary = (await cur.fetchone())["id"]

    async def canary_done() -> bool:
        return (await _statuses(conn)).get(canary) == "completed"

    await wait_until(canary_done, within=20)
    assert not worker.task.done()
