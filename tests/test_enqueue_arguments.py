"""
Every argument of `broseph.enqueue` / `broseph.enqueue_many` is checked by name: a bad value is
refused with SQLSTATE 22023, `diag.column_name` naming the argument (or `params.<path>`), a short
message echoing at most a prefix of the value, and nothing written. The Python face raises one
exception type carrying the same name.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import psycopg
import pytest

from broseph import enqueue, jobs
from broseph.jobs.process_engagement import ProcessEngagement
from tests.enqueue_calls import Answer, Raw, attempt


@pytest.fixture
def db_url(profile_db_url: str) -> str:
    """
    Both profiles (tests/profiles.py): every refusal names its argument on plain PostgreSQL and on
    a Supabase-like database alike.
    """
    return profile_db_url


MB = 1_000_000
_NOW = datetime.datetime.now(datetime.UTC)
GROUP = "6f1c1c8e-2b7a-4f0e-9a51-0c3c2d1e4f5a"
PARAMS = {"group_id": GROUP, "local_date": "2026-03-01"}


def _one(**override: Any) -> dict[str, Any]:
    return {"job_type": "ProcessEngagement", "params": dict(PARAMS), **override}


def _many(**override: Any) -> dict[str, Any]:
    return {"job_type": "ProcessEngagement", "params": [dict(PARAMS)], **override}


def _params(**fields: Any) -> dict[str, Any]:
    return {**PARAMS, **fields}


async def _written(conn: psycopg.AsyncConnection[Any]) -> tuple[int, int]:
    cur = await conn.execute(
        "SELECT (SELECT count(*) FROM broseph.job_records) AS records,"
        " (SELECT count(*) FROM procrastinate_jobs) AS jobs"
    )
    row = await cur.fetchone()
    assert row is not None
    return row["records"], row["jobs"]


def _refused_by_name(answer: Answer, column: str) -> None:
    assert not answer.accepted, f"accepted; expected a refusal naming {column}"
    assert (answer.sqlstate, answer.column) == ("22023", column), answer
    assert answer.message and len(answer.message) < 400, answer.message


REFUSED_ONE = [
    # job_type
    ("job_type NULL", _one(job_type=None), "job_type"),
    ("unknown job type, 400 kB", _one(job_type="Nope" * 100_000), "job_type"),
    # params
    ("params NULL", _one(params=None), "params"),
    ("params an array", _one(params=Raw("[1, 2]")), "params"),
    ("params a string", _one(params=Raw('"x"')), "params"),
    ("uuid field not a uuid", _one(params=_params(group_id="abc")), "params.group_id"),
    ("uuid field 1 MB", _one(params=_params(group_id="a" * MB)), "params.group_id"),
    ("uuid field with braces", _one(params=_params(group_id="{" + GROUP + "}")), "params.group_id"),
    ("uuid field a number", _one(params=_params(group_id=7)), "params.group_id"),
    ("date field not a date", _one(params=_params(local_date="2026-02-30")), "params.local_date"),
    ("date field a timestamp", _one(params=_params(local_date=1767225600)), "params.local_date"),
    ("missing field", _one(params={"local_date": "2026-03-01"}), "params.group_id"),
    ("null required field", _one(params=_params(group_id=None)), "params.group_id"),
    ("unknown field", _one(params=_params(body="hi")), "params.body"),
    ("unknown field, 1 MB name", _one(params=_params(**{"k" * MB: 1})), "params." + "k" * 40),
    # idempotency_key
    ("key empty", _one(idempotency_key=""), "idempotency_key"),
    ("key 501 characters", _one(idempotency_key="k" * 501), "idempotency_key"),
    ("key 1 MB", _one(idempotency_key="k" * MB), "idempotency_key"),
    # run_at
    ("run_at infinity", _one(run_at=Raw("infinity")), "run_at"),
    ("run_at -infinity", _one(run_at=Raw("-infinity")), "run_at"),
    ("run_at BC", _one(run_at=Raw("0044-03-15 12:00:00+00 BC")), "run_at"),
    ("run_at year 1", _one(run_at=Raw("0001-01-01 00:00:00+00")), "run_at"),
    ("run_at before 2000", _one(run_at=Raw("1999-12-31 23:59:59+00")), "run_at"),
    ("run_at beyond Python", _one(run_at=Raw("294276-12-31 23:59:59+00")), "run_at"),
    # priority
    ("priority NULL", _one(priority=None), "priority"),
    ("priority above range", _one(priority=10_000_001), "priority"),
    ("priority below range", _one(priority=-10_000_001), "priority"),
    ("priority int max", _one(priority=2**31 - 1), "priority"),
    # source
    ("source NULL", _one(source=None), "source"),
    ("source empty", _one(source=""), "source"),
    ("source 65 characters", _one(source="s" * 65), "source"),
    ("source 1 MB", _one(source="s" * MB), "source"),
    ("source with a newline", _one(source="api\nforged log line"), "source"),
    # retry
    ("retry an array", _one(retry=Raw("[1]")), "retry"),
    ("retry a number", _one(retry=Raw("-5")), "retry"),
    ("retry max_attempts 0", _one(retry={"max_attempts": 0}), "retry.max_attempts"),
    ("retry max_attempts -5", _one(retry={"max_attempts": -5}), "retry.max_attempts"),
    ("retry max_attempts 1001", _one(retry={"max_attempts": 1001}), "retry.max_attempts"),
    ("retry max_attempts 1.5", _one(retry={"max_attempts": 1.5}), "retry.max_attempts"),
    ("retry max_attempts 1e300", _one(retry=Raw('{"max_attempts": 1e300}')), "retry.max_attempts"),
    ("retry max_attempts text", _one(retry={"max_attempts": "3"}), "retry.max_attempts"),
    ("retry max_attempts null", _one(retry={"max_attempts": None}), "retry.max_attempts"),
    ("retry backoff negative", _one(retry={"backoff_seconds": -1}), "retry.backoff_seconds"),
    ("retry backoff a day+", _one(retry={"backoff_seconds": 86_401}), "retry.backoff_seconds"),
    ("retry backoff text", _one(retry={"backoff_seconds": "1"}), "retry.backoff_seconds"),
    ("retry backoff_type", _one(retry={"backoff_type": "linear"}), "retry.backoff_type"),
    ("retry unknown key", _one(retry={"attempts": 3}), "retry.attempts"),
]


@pytest.mark.parametrize(
    ("args", "column"),
    [pytest.param(args, column, id=name) for name, args, column in REFUSED_ONE if column],
)
async def test_enqueue_refuses_each_bad_argument_by_name_and_writes_nothing(conn, args, column):
    before = await _written(conn)
    _refused_by_name(await attempt(conn, "enqueue", args), column)
    assert await _written(conn) == before


async def test_run_at_more_than_a_year_ahead_is_refused(conn):
    cur = await conn.execute("SELECT now() + interval '367 days' AS late, now() AS now")
    row = await cur.fetchone()
    _refused_by_name(await attempt(conn, "enqueue", _one(run_at=row["late"])), "run_at")


ACCEPTED_ONE = [
    ("defaults", _one()),
    ("key 500 characters", _one(idempotency_key="k" * 500)),
    ("unicode key", _one(idempotency_key="ключ-🔑-鍵")),
    ("run_at 2000-01-01", _one(run_at=Raw("2000-01-01 00:00:00+00"))),
    ("run_at 365 days ahead", _one(run_at=_NOW + datetime.timedelta(days=365))),
    ("run_at in the past", _one(run_at=_NOW - datetime.timedelta(days=3650))),
    ("priority bounds", _one(priority=10_000_000)),
    ("priority lower bound", _one(priority=-10_000_000)),
    ("source 64 characters", _one(source="s" * 64)),
    ("unicode source", _one(source="supabase-rpc · 東京")),
    ("retry empty", _one(retry={})),
    ("retry full", _one(retry={"max_attempts": 1000, "backoff_seconds": 0.5,
                               "backoff_type": "fixed"})),
    ("retry exponential", _one(retry={"max_attempts": 1, "backoff_seconds": 86_400,
                                      "backoff_type": "exponential"})),
]  # fmt: skip


@pytest.mark.parametrize("args", [pytest.param(args, id=name) for name, args in ACCEPTED_ONE])
async def test_enqueue_accepts_values_inside_the_limits(conn, args):
    args = {**args, "params": _params(group_id=str(uuid.uuid4()))}
    answer = await attempt(conn, "enqueue", args)
    assert answer.accepted, answer


REFUSED_MANY = [
    ("params NULL", _many(params=None), "params"),
    ("a NULL element", _many(params=[dict(PARAMS), None]), "params[2]"),
    ("a bad element", _many(params=[dict(PARAMS), _params(group_id="X")]), "params[2].group_id"),
    (
        "a bad element in a large batch (set-based path)",
        _many(params=[_params(group_id=str(uuid.uuid4())) for _ in range(19)]
              + [_params(local_date="2026-13-01")]),
        "params[20].local_date",
    ),
    ("keys shorter than params", _many(idempotency_keys=[]), "idempotency_keys"),
    ("keys longer than params", _many(idempotency_keys=["a", "b"]), "idempotency_keys"),
    ("a key too long", _many(params=[dict(PARAMS)] * 2, idempotency_keys=["a", "k" * 501]),
     "idempotency_keys[2]"),
    ("an empty key", _many(idempotency_keys=[""]), "idempotency_keys[1]"),
    ("job_type NULL", _many(job_type=None), "job_type"),
    ("run_at infinity", _many(run_at=Raw("infinity")), "run_at"),
    ("priority NULL", _many(priority=None), "priority"),
    ("source NULL", _many(source=None), "source"),
    ("retry max_attempts 0", _many(retry={"max_attempts": 0}), "retry.max_attempts"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "column"), [pytest.param(a, c, id=name) for name, a, c in REFUSED_MANY]
)
async def test_enqueue_many_refuses_each_bad_argument_by_name(conn, args, column):
    before = await _written(conn)
    _refused_by_name(await attempt(conn, "enqueue_many", args), column)
    assert await _written(conn) == before


async def test_a_refused_value_is_echoed_as_a_short_prefix(conn):
    answer = await attempt(conn, "enqueue", _one(params=_params(group_id="z" * MB)))
    assert answer.message is not None
    assert answer.message.startswith('ProcessEngagement: field "group_id" must be a UUID, got "zzz')
    assert len(answer.message) < 200
    answer = await attempt(conn, "enqueue", _one(job_type="Q" * MB))
    assert answer.message is not None and len(answer.message) < 400
    assert answer.message.startswith('unknown job type "QQQ')


# --- one job per id, whatever its case --------------------------------------------------------


async def test_upper_case_uuid_coalesces_with_lower_case_and_is_stored_canonical(conn):
    upper, lower = GROUP.upper(), GROUP
    first = await attempt(conn, "enqueue", _one(params=_params(group_id=upper)))
    second = await attempt(conn, "enqueue", _one(params=_params(group_id=lower)))
    many = await attempt(conn, "enqueue_many", _many(params=[_params(group_id=upper)] * 20))
    assert first.ids and second.ids and many.ids
    assert first.ids == second.ids and set(many.ids) == set(first.ids)
    cur = await conn.execute(
        "SELECT r.params, r.coalesce_key, j.lock, j.args FROM broseph.job_records r"
        " JOIN procrastinate_jobs j ON j.id = r.procrastinate_job_id"
    )
    rows = await cur.fetchall()
    assert len(rows) == 1
    assert rows[0]["params"] == PARAMS
    assert rows[0]["lock"] == rows[0]["coalesce_key"] == f"ProcessEngagement:{lower}:2026-03-01"
    assert rows[0]["args"]["group_id"] == lower


async def test_optional_nulls_are_dropped_so_keys_agree(conn):
    target = {"user_id": GROUP, "type": "new_message", "data": {"group_id": GROUP}}
    with_nulls = {
        "user_id": GROUP.upper(),
        "type": "new_message",
        "data": {"group_id": GROUP.upper(), "prompt_id": None},
    }
    a = await attempt(conn, "enqueue", {"job_type": "SendNotification", "params": target})
    b = await attempt(conn, "enqueue", {"job_type": "SendNotification", "params": with_nulls})
    assert a.ids and a.ids == b.ids
    cur = await conn.execute("SELECT params FROM broseph.job_records")
    assert [r["params"] for r in await cur.fetchall()] == [target]


# --- the per-type rules of SendNotification and NotifyMembers, in SQL too -----------------------

CONDITIONAL = [
    ("SendNotification", {"user_id": GROUP, "type": "new_prompt", "data": {"group_id": GROUP}},
     "params.data.prompt_id"),
    ("SendNotification", {"user_id": GROUP, "type": "friend_joined", "data": {}},
     "params.data.group_id"),
    ("SendNotification", {"user_id": GROUP, "type": "friend_joined", "data": {"group_id": GROUP}},
     "params.data.friend_id"),
    ("SendNotification", {"user_id": GROUP, "type": "new_message", "data": {}},
     "params.data.group_id"),
    ("NotifyMembers", {"group_id": GROUP, "type": "new_prompt"}, "params.prompt_id"),
    ("NotifyMembers", {"group_id": GROUP, "type": "friend_joined"}, "params.friend_id"),
]  # fmt: skip


@pytest.mark.parametrize(("job_type", "params", "column"), CONDITIONAL)
async def test_per_type_rules_are_enforced_at_enqueue(conn, job_type, params, column):
    answer = await attempt(conn, "enqueue", {"job_type": job_type, "params": params})
    _refused_by_name(answer, column)
    assert "needs" in (answer.message or "")


# --- the functions themselves -------------------------------------------------------------------


async def test_enqueue_functions_are_definer_pinned_and_service_role_only(conn):
    cur = await conn.execute(
        "SELECT p.oid::regprocedure::text AS name, p.prosecdef, p.proconfig,"
        "       has_function_privilege('anon', p.oid, 'EXECUTE') AS anon,"
        "       has_function_privilege('authenticated', p.oid, 'EXECUTE') AS authenticated,"
        "       has_function_privilege('service_role', p.oid, 'EXECUTE') AS service_role,"
        "       coalesce(p.proacl::text, '') ~ '(^|[{,])=X' AS public"
        "  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = 'broseph' AND p.proname IN ('enqueue', 'enqueue_many')"
        " ORDER BY 1"
    )
    rows = await cur.fetchall()
    assert [r["name"] for r in rows] == [
        # 0024 added the trace context (traceparent, tracestate) as two last defaulted arguments.
        "broseph.enqueue(text,jsonb,text,timestamp with time zone,integer,text,jsonb,text,text)",
        "broseph.enqueue_many(text,jsonb[],text[],timestamp with time zone,integer,text,jsonb,"
        "text,text)",
    ]
    for row in rows:
        assert row["prosecdef"], row["name"]
        # jit off (migrations/0029): compiling a batch INSERT costs more than it saves.
        assert row["proconfig"] == ["search_path=pg_catalog, pg_temp", "jit=off"], row["name"]
        assert (row["anon"], row["authenticated"], row["public"]) == (False, False, False)
        assert row["service_role"]


async def test_service_role_enqueues_through_the_definer(conn):
    async with conn.transaction(force_rollback=True):
        await conn.execute("SET LOCAL ROLE service_role")
        accepted = await attempt(conn, "enqueue", _one())
        refused = await attempt(conn, "enqueue", _one(priority=None))
    assert accepted.accepted, accepted
    _refused_by_name(refused, "priority")


# --- the Python face --------------------------------------------------------------------------


def _payload() -> ProcessEngagement:
    return ProcessEngagement(group_id=uuid.uuid4(), local_date=datetime.date(2026, 3, 1))


PYTHON_REFUSED = [
    ({"idempotency_key": "k" * MB}, "idempotency_key"),
    ({"idempotency_key": "nul\x00byte"}, "idempotency_key"),
    ({"priority": 2**40}, "priority"),
    ({"priority": None}, "priority"),
    ({"run_at": datetime.datetime(1, 1, 1, tzinfo=datetime.UTC)}, "run_at"),
    ({"run_at": datetime.datetime(9999, 12, 31, tzinfo=datetime.UTC)}, "run_at"),
    ({"source": ""}, "source"),
    ({"retry": {"max_attempts": 0}}, "retry.max_attempts"),
    ({"retry": {"backoff_seconds": float("nan")}}, "retry"),
    ({"retry": {"max_attempts": object()}}, "retry"),
]


@pytest.mark.parametrize(("kwargs", "argument"), PYTHON_REFUSED)
async def test_python_face_raises_enqueue_error_naming_the_argument(db_url, kwargs, argument):
    async with await psycopg.AsyncConnection.connect(db_url) as api:
        with pytest.raises(enqueue.EnqueueError) as caught:
            await enqueue.enqueue(api, _payload(), **kwargs)
        assert caught.value.argument == argument
        assert len(str(caught.value)) < 400
        await api.rollback()
        if "idempotency_key" in kwargs:
            kwargs = {"idempotency_keys": [None, kwargs["idempotency_key"]]}
            argument = "idempotency_keys[2]"
        with pytest.raises(enqueue.EnqueueError) as caught:
            await enqueue.enqueue_many(api, [_payload(), _payload()], **kwargs)
        assert caught.value.argument == argument


async def test_python_face_enqueue_many_names_mismatched_keys(db_url):
    async with await psycopg.AsyncConnection.connect(db_url) as api:
        with pytest.raises(enqueue.EnqueueError) as caught:
            await enqueue.enqueue_many(api, [_payload(), _payload()], idempotency_keys=["a"])
        assert caught.value.argument == "idempotency_keys"
        with pytest.raises(enqueue.EnqueueError) as caught:
            await enqueue.enqueue_many(
                api, [_payload(), _payload()], idempotency_keys=["a", "k" * 501]
            )
        assert caught.value.argument == "idempotency_keys[2]"
        await api.rollback()
        # Sent in slices: the index still counts from the start of the whole call.
        with pytest.raises(enqueue.EnqueueError) as caught:
            await enqueue.enqueue_many(
                api,
                [_payload() for _ in range(5)],
                idempotency_keys=["a", "b", "c", "d", ""],
                chunk_size=2,
            )
        assert caught.value.argument == "idempotency_keys[5]"
        assert "idempotency_keys[5]" in str(caught.value)


def test_python_face_accepts_the_same_id_forms_as_sql():
    upper = jobs.payload_for("ProcessEngagement", {**PARAMS, "group_id": GROUP.upper()})
    assert upper.to_params() == PARAMS
    for bad in ("{" + GROUP + "}", GROUP.replace("-", ""), f"urn:uuid:{GROUP}"):
        with pytest.raises(ValueError, match="group_id"):
            jobs.payload_for("ProcessEngagement", {**PARAMS, "group_id": bad})
    for bad_day in (1767225600, "2026-03-01T00:00:00", "20260301"):
        with pytest.raises(ValueError, match="local_date"):
            jobs.payload_for("ProcessEngagement", {**PARAMS, "local_date": bad_day})
