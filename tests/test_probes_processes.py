"""
The probes of real processes, started as an operator starts them, each with METRICS_PORT:
a worker (`procrastinate --app … worker`), the ingress (`broseph ingress bullmq`) and the
dashboard (`broseph dashboard`).

- Postgres stopped (the throwaway cluster of tests/pgcluster.py, not a wrong port): /livez stays
  200 in all three while /readyz goes 503 naming the database (and the worker's LISTEN), then
  all recover when it is back — nobody restarted anything.
- A job that blocks the worker's event loop: /livez fails while the process lives, and passes
  again when the loop runs.
- Redis stopped under the ingress: /readyz names Redis, /livez stays 200.
- The ingress's /metrics: its counters, and backlog and lag read through bullmq's Queue API.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from psycopg.types.json import Jsonb

from broseph.ingress import probes as ingress_probes
from broseph.ops import probes
from tests import ingress_support, processes
from tests.conftest import venv_bin
from tests.ingress_support import IngressProcess, private_redis, producer, unique_queue, valid_data
from tests.pgcluster import free_port
from tests.probe_support import Answer, aget, until_answer

pytest_plugins = ("tests.ops_fixtures",)  # cluster, ops_url, ops_conn, workers


def samples(answer: Answer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.body)
        for s in family.samples
    }


class Dashboard:
    """
    `broseph dashboard` as an operator starts it (loopback, no password), probes on a port.
    """

    def __init__(self, url: str, workdir: Path) -> None:
        self.probe_port = free_port()
        self.log = workdir / "dashboard.log"
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "METRICS_PORT": str(self.probe_port),
            "METRICS_ADDR": "127.0.0.1",
            "LOG_FORMAT": "json",
        }
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(venv_bin("broseph")), "dashboard", "--port", str(free_port())],
                cwd=workdir,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def close(self) -> None:
        processes.stop(self.proc, within=10)


@pytest.fixture
def dashboards(tmp_path: Path) -> Iterator[list[Dashboard]]:
    yield from processes.each_closed(Dashboard.close)


@pytest.fixture
def ingresses() -> Iterator[list[IngressProcess]]:
    yield from processes.each_closed(IngressProcess.close)


async def test_a_database_outage_fails_readiness_never_liveness_and_all_recover(
    cluster, ops_url, workers, dashboards, ingresses, tmp_path
):
    queue = unique_queue()
    worker_port, ingress_port = free_port(), free_port()
    worker = await workers("w", METRICS_PORT=str(worker_port), METRICS_ADDR="127.0.0.1")
    ingress = IngressProcess(
        tmp_path,
        {
            "DATABASE_URL": ops_url,
            "REDIS_URL": ingress_support.REDIS_URL,
            "INGRESS_QUEUES": queue,
            "METRICS_PORT": str(ingress_port),
            "METRICS_ADDR": "127.0.0.1",
            "METRICS_SAMPLE_SECONDS": "0.2",
        },
    )
    ingresses.append(ingress)
    ingress.start()
    dashboard = Dashboard(ops_url, tmp_path)
    dashboards.append(dashboard)
    ports = {"worker": worker_port, "ingress": ingress_port, "dashboard": dashboard.probe_port}

    ready = {name: await until_answer(port, "/readyz", 200) for name, port in ports.items()}
    assert set(ready["worker"].lines) == {"database", "migrations", "listen"}
    assert set(ready["ingress"].lines) == {"database", "migrations", "redis", "consuming"}
    assert set(ready["dashboard"].lines) == {"database", "migrations"}

    # The ingress counts what it moved, and says so on /metrics.
    async with producer(queue) as q:
        await q.add("GeneratePrompt", valid_data("GeneratePrompt"))
        enqueued = (
            "broseph_ingress_jobs_total",
            (("outcome", "enqueued"), ("queue", queue)),
        )
        await _until_metric(ingress_port, enqueued, 1.0)

        cluster.stop()
        try:
            down: dict[str, Answer] = {}
            deadline = time.monotonic() + 30
            while len(down) < len(ports):
                for name, port in ports.items():
                    live = await aget(port, "/livez")
                    assert live.status == 200, (name, live)
                    answer = await aget(port, "/readyz")
                    if answer.status == 503 and "database" in answer.body.splitlines()[0]:
                        down.setdefault(name, answer)
                assert time.monotonic() < deadline, down
                await asyncio.sleep(0.2)
            # Liveness keeps passing for as long as the outage lasts.
            for _ in range(5):
                for name, port in ports.items():
                    assert (await aget(port, "/livez")).status == 200, name
                await asyncio.sleep(0.4)
        finally:
            cluster.start()

        for name, answer in down.items():
            assert "connection refused" in answer.lines["database"], (name, answer.body)
            assert answer.lines["migrations"] == "not checked: the database is unreachable"
        assert down["worker"].lines["listen"].startswith("LISTEN is not established")
        assert down["ingress"].lines["redis"] == "ok"

        for port in ports.values():
            await until_answer(port, "/readyz", 200, within=30)
        assert worker.process.poll() is None and ingress.proc and ingress.proc.poll() is None
        assert dashboard.proc.poll() is None

        # And the ingress moves jobs again.
        await q.add("GeneratePrompt", valid_data("GeneratePrompt"))
        await _until_metric(ingress_port, enqueued, 2.0)


async def _until_metric(port: int, key: tuple, value: float, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while True:
        found = samples(await aget(port, "/metrics")).get(key)
        if found == value:
            return
        assert time.monotonic() < deadline, (key, found)
        await asyncio.sleep(0.1)


async def test_a_blocked_event_loop_fails_livez_while_the_worker_lives(ops_conn, workers):
    port = free_port()
    worker = await workers("w", METRICS_PORT=str(port), METRICS_ADDR="127.0.0.1")
    await until_answer(port, "/livez", 200)
    await ops_conn.execute(
        "SELECT broseph.enqueue('TestBlockLoop', %s)", (Jsonb({"millis": 8000}),)
    )
    failed = await until_answer(port, "/livez", 503, within=15)
    assert failed.body == f"event loop did not answer within {probes.LOOP_TIMEOUT:g} s\n"
    assert worker.process.poll() is None  # alive: only its loop is stuck
    with pytest.raises(TimeoutError):
        await aget(port, "/livez", wait=1)  # Kubernetes' default timeoutSeconds: no answer
    await until_answer(port, "/livez", 200, within=15)
    assert worker.process.poll() is None


async def test_the_ingress_is_not_ready_without_redis_but_stays_live(db_url, tmp_path, ingresses):
    port = free_port()
    with private_redis(tmp_path) as redis_server:
        ingress = IngressProcess(
            tmp_path,
            {
                "DATABASE_URL": db_url,
                "REDIS_URL": redis_server.url,
                "INGRESS_QUEUES": unique_queue(),
                "METRICS_PORT": str(port),
                "METRICS_ADDR": "127.0.0.1",
            },
        )
        ingresses.append(ingress)
        ingress.start()
        await until_answer(port, "/readyz", 200)
        redis_server.stop()
        down = await until_answer(port, "/readyz", 503, contains="redis")
        assert down.lines["redis"].startswith("Redis unreachable:"), down.body
        assert down.lines["database"] == "ok"
        assert (await aget(port, "/livez")).status == 200
        redis_server.start()
        await until_answer(port, "/readyz", 200, within=40)
        assert ingress.proc and ingress.proc.poll() is None


async def test_backlog_and_lag_come_from_bullmq_s_queue_api():
    queue = unique_queue()
    backlog = ingress_probes.Backlog(ingress_support.REDIS_URL, [queue])
    try:

        def lag() -> float | None:
            return REGISTRY.get_sample_value("broseph_ingress_lag_seconds", {"queue": queue})

        def jobs(state: str) -> float | None:
            labels = {"queue": queue, "state": state}
            return REGISTRY.get_sample_value("broseph_ingress_backlog_jobs", labels)

        await backlog.sample()
        assert lag() == 0 and jobs("waiting") == 0
        async with producer(queue) as q:
            for _ in range(3):
                await q.add("GeneratePrompt", {})
            await q.add("GeneratePrompt", {}, {"delay": 60_000})  # not due: not waiting
            await asyncio.sleep(1.2)
            await q.add("GeneratePrompt", {}, {"priority": 3})  # newer: not the lag
            await backlog.sample()
            assert (jobs("waiting"), jobs("prioritized"), jobs("delayed")) == (3, 1, 1)
            assert 1.2 <= (lag() or 0) < 10
            # A prioritized job next in line that has waited longer than the waiting list's
            # oldest sets the lag.
            await q.drain()
            await q.add("GeneratePrompt", {}, {"priority": 1})
            await asyncio.sleep(0.6)
            await q.add("GeneratePrompt", {})
            await backlog.sample()
            assert (jobs("waiting"), jobs("prioritized")) == (1, 1)
            assert 0.6 <= (lag() or 0) < 1.2
    finally:
        await backlog.close()
