"""
The two faces of enqueue accept exactly the same payloads (property test).

For every job type in the catalogue, hypothesis generates params from the model (through its SQL
field spec) and hostile mutations of them (tests/payload_strategies.py). Each is given to the
Python face (`model_validate`) and to the SQL face (`broseph.enqueue`, in a transaction rolled
back afterwards). They must agree: both accept — and SQL stores exactly what the model would send
(`to_params()`: canonical ids, no nulls), plus the value enqueue fills in for a field the model
left out that has a default in the spec (`JobPayload.defaults`, migrations/0021) — or both refuse,
SQL with SQLSTATE 22023 naming in `diag.column_name` one of the problems pydantic reports.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from broseph import jobs
from broseph.jobs.base import JobPayload, field_spec
from tests import payload_strategies
from tests.enqueue_calls import statement


@pytest.fixture
def db_url(profile_db_url: str) -> str:
    """
    Both profiles (tests/profiles.py): the contract is the same on plain PostgreSQL and on a
    Supabase-like database, where enqueue runs as Supabase's non-superuser postgres.
    """
    return profile_db_url


@pytest.fixture
def sql_face(db_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(db_url) as conn:
        yield conn


def _sql(conn: psycopg.Connection[Any], job_type: str, params: Any) -> tuple[Any, Any, Any]:
    """
    (stored params, None, the transaction's UTC date) or (None, the error, None); nothing stays
    written either way.
    """
    query, values = statement("enqueue", {"job_type": job_type, "params": params})
    try:
        with conn.transaction(force_rollback=True):
            row = conn.execute(query, values).fetchone()  # type: ignore[arg-type]
            assert row is not None
            stored = conn.execute(
                "SELECT params, (now() AT TIME ZONE 'UTC')::date::text AS today"
                " FROM broseph.job_records WHERE id = %s",
                (row[0],),
            ).fetchone()
            assert stored is not None
            return stored[0], None, stored[1]
    except psycopg.Error as exc:
        return None, exc, None


def _with_defaults(spec: dict[str, Any], sent: dict[str, Any], utc_today: str) -> dict[str, Any]:
    """
    What SQL stores for params the model sends: each absent field with a default filled in. The
    only rule, group_local_date, reads a group that does not exist — no generated group_id names
    one in this empty database — as UTC.
    """
    filled = dict(sent)
    for name, entry in spec.items():
        if "default" in entry and name not in sent:
            assert entry["default"] == "group_local_date", entry
            filled[name] = utc_today
    return filled


def _python(model: type[JobPayload], params: Any) -> tuple[Any, set[str]]:
    """
    (params as the model sends them, set()) or (None, the paths pydantic complains about).
    """
    try:
        return model.model_validate(params).to_params(), set()
    except ValidationError as exc:
        paths = set()
        for error in exc.errors():
            paths.add(".".join(str(p) for p in error["loc"]))
            # A per-type rule names the missing fields in its message (JobPayload.requires).
            if match := re.search(r"needs (.+)$", str(error["msg"])):
                paths.update(p.strip() for p in match[1].split(","))
        return None, paths


def _same_path(column: str, python_path: str) -> bool:
    """
    The SQL column names the Python path (keys in SQL errors are cut to 40 characters and
    control characters shown as '?').
    """
    sql_path = column.removeprefix("params").removeprefix(".")
    sql_parts, py_parts = (
        sql_path.split(".") if sql_path else [],
        (python_path.split(".") if python_path else []),
    )
    if len(sql_parts) != len(py_parts):
        return sql_path == python_path
    return all(
        s == p
        or (len(s) == len(p[:40]) and all(a in (b, "?") for a, b in zip(s, p[:40], strict=True)))
        for s, p in zip(sql_parts, py_parts, strict=True)
    )


@pytest.mark.parametrize("job_type", sorted(jobs.CATALOGUE))
def test_sql_and_python_accept_exactly_the_same_payloads(
    sql_face: psycopg.Connection[Any], job_type: str
) -> None:
    model = jobs.get(job_type).payload
    spec = field_spec(model)

    @settings(
        max_examples=250,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(params=st.one_of(payload_strategies.valid(spec), payload_strategies.hostile(spec)))
    def agree(params: Any) -> None:
        sent, problems = _python(model, params)
        stored, error, utc_today = _sql(sql_face, job_type, params)
        if sent is not None:
            assert error is None, (f"SQL refused what Python accepts: {error}", params)
            assert stored == _with_defaults(spec, sent, utc_today), params
            return
        assert error is not None, (f"SQL accepted what Python refuses: {problems}", params)
        assert error.sqlstate == "22023", (error, params)
        column = error.diag.column_name or ""
        assert column.startswith("params"), (column, error, params)
        assert any(_same_path(column, p) for p in problems), (column, problems, params)

    agree()
