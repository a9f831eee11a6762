"""
The probe endpoint itself (broseph/ops/probes.py), in this process: /livez answers from the
event loop — a blocked loop fails it while the process lives on — /readyz names each failing
check and its reason, /metrics is Prometheus text; the readiness checks against a real database;
systemd's notify protocol against a fake notify socket.

The same endpoints served by real worker, ingress and dashboard processes through a database
outage: tests/test_probes_processes.py.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Mapping

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from broseph import metrics
from broseph.ops import probes, readiness, systemd
from broseph.settings import Settings
from tests.probe_support import Answer, aget, get, notify_socket


@contextlib.asynccontextmanager
async def served(checks: Mapping[str, probes.Check] | None = None) -> AsyncIterator[int]:
    async with probes.serving(checks or {}, port=0, addr="127.0.0.1") as port:
        yield port


async def test_livez_answers_from_the_loop_and_fails_while_it_is_blocked():
    async with served() as port:
        assert (await aget(port, "/livez")) == Answer(200, "ok\n", "text/plain; charset=utf-8")

        # A request made while the loop is stuck in a synchronous call (time.sleep here, a
        # CPU-bound handler or a blocking library in real life).
        answers: list[Answer | BaseException] = []

        def ask(timeout: float) -> None:
            try:
                answers.append(get(port, "/livez", timeout=timeout))
            except OSError as exc:
                answers.append(exc)

        patient = threading.Thread(target=ask, args=(10,))
        hasty = threading.Thread(target=ask, args=(1,))  # Kubernetes' default timeoutSeconds
        patient.start()
        hasty.start()
        time.sleep(probes.LOOP_TIMEOUT + 1.5)  # noqa: ASYNC251 (blocking this loop is the point)
        patient.join(10)
        hasty.join(10)
        assert threading.main_thread().is_alive()  # the process lives on
        timed_out = [a for a in answers if isinstance(a, TimeoutError)]
        refused = [a for a in answers if isinstance(a, Answer)]
        assert len(timed_out) == 1 and len(refused) == 1, answers
        assert refused[0].status == 503
        assert refused[0].body == f"event loop did not answer within {probes.LOOP_TIMEOUT:g} s\n"

        # The loop runs again: so does /livez.
        assert (await aget(port, "/livez")).status == 200


async def test_readyz_names_each_failing_check_with_its_reason():
    calls: list[str] = []

    async def fine() -> None:
        calls.append("fine")

    async def down() -> None:
        calls.append("down")
        raise probes.NotReady("cannot reach it (connection refused)")

    async def broken() -> None:
        calls.append("broken")
        raise ValueError("first line\nthe last line says it")

    async def secret() -> None:
        raise probes.NotReady("postgresql://app:Hunter2-secret@db:5432/x refused")

    async with served({"a": fine, "b": down, "c": broken, "d": secret}) as port:
        answer = await aget(port, "/readyz")
    assert answer.status == 503
    assert answer.body.splitlines()[0] == "not ready: b, c, d"
    assert answer.lines["a"] == "ok"
    assert answer.lines["b"] == "cannot reach it (connection refused)"
    assert answer.lines["c"] == "ValueError: the last line says it"
    assert "Hunter2-secret" not in answer.body and "refused" in answer.lines["d"]
    assert calls == ["fine", "down", "broken"]  # in order, each once

    async with served({"a": fine}) as port:
        assert await aget(port, "/readyz") == Answer(
            200, "ready\na: ok\n", "text/plain; charset=utf-8"
        )


async def test_concurrent_readyz_requests_share_one_run_of_the_checks():
    runs = 0

    async def slow() -> None:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.5)

    async with served({"slow": slow}) as port:
        with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
            futures = [pool.submit(get, port, "/readyz") for _ in range(20)]
            answers = await asyncio.gather(*(asyncio.wrap_future(f) for f in futures))
        assert all(a.status == 200 for a in answers)
        assert runs <= 2, runs  # not one database round per request
        before = runs
        await aget(port, "/readyz")
        assert runs == before + 1  # a later probe runs them afresh


async def test_readyz_spends_a_bounded_budget_on_a_hanging_check():
    async def hangs() -> None:
        await asyncio.sleep(3600)

    async def after() -> None:
        pass

    async with served({"slow": hangs, "next": after}) as port:
        started = time.monotonic()
        answer = await aget(port, "/readyz")
        took = time.monotonic() - started
    assert answer.status == 503
    assert answer.lines["slow"].startswith("no answer within")
    assert answer.lines["next"].startswith("not checked")
    assert took < probes.READY_TIMEOUT + probes.LOOP_TIMEOUT


async def test_metrics_is_prometheus_text_and_other_paths_are_404():
    metrics.JOBS.labels("ProbeTestJob", "completed").inc()
    async with served() as port:
        answer = await aget(port, "/metrics")
        missing = await aget(port, "/nothing")
    assert answer.status == 200 and answer.content_type.startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(answer.body)}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for s in families["broseph_jobs"].samples
    }
    assert (
        samples[("broseph_jobs_total", (("job_type", "ProbeTestJob"), ("outcome", "completed")))]
        >= 1
    )
    assert "broseph_ingress_jobs" in families and "broseph_ingress_lag_seconds" in families
    assert missing.status == 404 and "/livez" in missing.body


async def test_running_serves_only_with_a_metrics_port():
    none = Settings(_env_file=None)  # type: ignore[call-arg]
    async with probes.running(none, {}) as port:
        assert port is None
    some = Settings(_env_file=None, metrics_port=0, metrics_addr="127.0.0.1")  # type: ignore[call-arg]
    async with probes.running(some, {}) as port:
        assert port and (await aget(port, "/livez")).status == 200
    with pytest.raises(OSError):
        get(port, "/livez", timeout=2)  # stopped with the block


# --- the database checks ------------------------------------------------------------------------


async def test_database_checks_on_their_own_connection(db_url, admin_url):
    database = readiness.Database(Settings(_env_file=None, database_url=db_url))  # type: ignore[call-arg]
    try:
        await database.reachable()
        await database.migrated()
        # Every backend of the database terminated (a failover, a restart): the next check
        # reconnects at once and passes.
        name = psycopg.conninfo.conninfo_to_dict(db_url)["dbname"]
        with psycopg.connect(admin_url, autocommit=True) as conn:
            (killed,) = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = %s AND application_name = 'broseph-probe'",
                (name,),
            ).fetchone()
        assert killed == 1
        await database.reachable()
        # A migration this code knows but the database lacks.
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(
                "DELETE FROM broseph.schema_migrations WHERE name = ("
                " SELECT max(name) FROM broseph.schema_migrations WHERE name ~ '^[0-9]')"
            )
        with pytest.raises(
            probes.NotReady, match=r"1 migration\(s\) pending: .* \(run broseph migrate\)"
        ):
            await database.migrated()
    finally:
        await database.close()


async def test_database_checks_when_nothing_listens():
    nowhere = "postgresql://postgres@127.0.0.1:1/postgres"
    database = readiness.Database(Settings(_env_file=None, database_url=nowhere))  # type: ignore[call-arg]
    with pytest.raises(probes.NotReady, match=r"connection refused"):
        await database.reachable()
    with pytest.raises(probes.NotReady, match="not checked: the database is unreachable"):
        await database.migrated()


# --- systemd ------------------------------------------------------------------------------------


async def test_systemd_hears_ready_watchdog_pings_from_the_loop_and_stopping(tmp_path):
    with notify_socket(tmp_path) as sock:
        environ = {"NOTIFY_SOCKET": str(sock.path), "WATCHDOG_USEC": "200000"}  # pings every 0.1 s
        async with systemd.watchdog(environ):
            await asyncio.sleep(0.55)
            assert sock.read(1)[0] == "READY=1"
            before = sock.read().count("WATCHDOG=1")
            assert before >= 4, sock.received
            time.sleep(0.6)  # noqa: ASYNC251 (a blocked loop sends nothing)
            assert sock.read().count("WATCHDOG=1") == before
            await asyncio.sleep(0.25)
            assert sock.read().count("WATCHDOG=1") > before
        assert sock.read(1)[-1] == "STOPPING=1"


async def test_systemd_abstract_socket_and_a_watchdog_meant_for_another_process(tmp_path):
    import socket as socketlib

    name = f"broseph-test-{time.monotonic_ns()}"
    with socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        environ = {"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "100000", "WATCHDOG_PID": "1"}
        assert systemd.watchdog_period(environ) is None  # PID 1's watchdog, not ours
        async with systemd.watchdog(environ):
            await asyncio.sleep(0.3)
        received = [sock.recv(100).decode(), sock.recv(100).decode()]
    assert received == ["READY=1", "STOPPING=1"]


def test_systemd_without_a_socket_sends_nothing():
    assert systemd.notify("READY=1", {}) is False
    assert systemd.watchdog_period({"WATCHDOG_USEC": "0"}) is None
    assert systemd.watchdog_period({"WATCHDOG_USEC": "30000000"}) == 15.0
