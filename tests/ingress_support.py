"""
Helpers for the BullMQ ingress tests: unique queues on the real Redis (obliterated afterwards
through the bullmq Queue API), the real Node producer, a private redis-server that can be
restarted, the ingress in-process or as the `broseph ingress bullmq` subprocess, and a TCP proxy
that can cut the ingress off from Postgres. Malformed-job strategies: tests/ingress_strategies.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import bullmq
import redis
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from broseph import jobs
from broseph.ingress import mapping
from broseph.ingress.bullmq import BullMQIngress
from broseph.jobs.base import field_spec
from broseph.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = ROOT / "tests" / "node"
# The running interpreter's console script: a second venv (CI's lowest-versions run) has its own.
BROSEPH = Path(sys.executable).parent / "broseph"
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")

# Node publisher method per BullMQ job name (tests/node/producer.mjs, the brief's publisher).
NODE_PUBLISH = {
    "GeneratePrompt": "promptGeneration",
    "SendNotification": "notification",
    "ProcessEngagement": "engagement",
}


def unique_queue() -> str:
    return f"broseph-jobs-test-{uuid.uuid4().hex[:12]}"


def live_routes() -> dict[str, mapping.Route]:
    """
    The built-in routes whose job type exists in the catalogue right now.
    """
    return {n: r for n, r in mapping.DEFAULT_ROUTES.items() if r.job_type in jobs.CATALOGUE}


# --- valid payloads, derived from each job type's own model ----------------------------------


def sample_value(spec: Mapping[str, Any]) -> Any:
    kind = spec["type"]
    if kind == "uuid":
        return str(uuid.uuid4())
    if kind == "date":
        return "2026-01-05"
    if kind == "enum":
        return spec["values"][0]
    if kind == "integer":
        return 1
    if kind == "object":
        return {k: sample_value(v) for k, v in spec["fields"].items()}
    return "hello"


def valid_pair(
    job_name: str, *, routes: Mapping[str, mapping.Route] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """
    A valid BullMQ payload for a routed job name in the producer's camelCase (every field,
    optional ones too), and the same values as the job type's payload fields.
    """
    route = (routes or mapping.DEFAULT_ROUTES)[job_name]
    outside = mapping.outside_paths(route)
    spec = field_spec(jobs.get(route.job_type).payload)
    return _both(spec, outside, "")


def _both(
    spec: Mapping[str, Any], outside: Mapping[str, str], prefix: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    camel: dict[str, Any] = {}
    snake: dict[str, Any] = {}
    for field, s in spec.items():
        name = outside.get(prefix + field, field).split(".")[-1]
        if s["type"] == "object":
            camel[name], snake[field] = _both(s["fields"], outside, f"{prefix}{field}.")
        else:
            camel[name] = snake[field] = sample_value(s)
    return camel, snake


def valid_data(
    job_name: str, *, routes: Mapping[str, mapping.Route] | None = None
) -> dict[str, Any]:
    return valid_pair(job_name, routes=routes)[0]


def required_fields(job_name: str) -> list[tuple[str, str]]:
    """
    (outside name, payload field) of every required top-level field of a routed job name.
    """
    route = mapping.DEFAULT_ROUTES[job_name]
    outside = mapping.outside_paths(route)
    spec = field_spec(jobs.get(route.job_type).payload)
    return [(outside.get(f, f), f) for f, s in spec.items() if s.get("required", True)]


# --- settings, producers, the in-process ingress ---------------------------------------------


def delivery(
    name: str, data: Any, *, job_id: str, options: dict[str, Any], timestamp_ms: int
) -> mapping.Delivery:
    """
    A BullMQ job of the broseph-jobs queue, as the ingress receives it.
    """
    return mapping.Delivery(
        source="bullmq",
        queue="broseph-jobs",
        job_id=job_id,
        name=name,
        data=data,
        options=options,
        timestamp_ms=timestamp_ms,
    )


def ingress_settings(settings: Settings, queue: str, **update: Any) -> Settings:
    values: dict[str, Any] = {
        "redis_url": REDIS_URL,
        "ingress_queues": [queue],
        "ingress_concurrency": 4,
        "ingress_lock_duration_ms": 5000,
        "ingress_stalled_interval_ms": 1000,
    }
    values.update(update)
    return settings.model_copy(update=values)


@contextlib.asynccontextmanager
async def producer(queue: str, redis_url: str = REDIS_URL) -> AsyncIterator[Any]:
    """
    A Python bullmq Queue (the second producer); the queue is obliterated at exit.
    """
    q = bullmq.Queue(queue, {"connection": redis_url})
    try:
        yield q
    finally:
        with contextlib.suppress(Exception):
            await q.obliterate(force=True)
        await q.close()


@contextlib.asynccontextmanager
async def running_ingress(settings: Settings) -> AsyncIterator[BullMQIngress]:
    ingress = BullMQIngress(settings)
    await ingress.start()
    try:
        yield ingress
    finally:
        await ingress.stop()


async def wait_consuming(ingress: BullMQIngress, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not (await ingress.health()).consuming:
        assert time.monotonic() < deadline, "ingress did not start consuming"
        await asyncio.sleep(0.05)


def node_publish(
    queue: str,
    items: list[dict[str, Any]],
    redis_url: str = REDIS_URL,
    traceparent: str | None = None,
) -> list[dict[str, Any]]:
    """
    Publish with the real npm bullmq through tests/node/producer.mjs; returns id/name/timestamp.
    With `traceparent`, bullmq's telemetry stores that producer context with each job.
    """
    if not (NODE_DIR / "node_modules" / "bullmq").is_dir():
        raise AssertionError("tests/node has no node_modules: run `npm ci` in tests/node")
    done = subprocess.run(
        ["node", str(NODE_DIR / "producer.mjs"), queue],
        input=json.dumps(items),
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "REDIS_URL": redis_url,
            **({"TRACEPARENT": traceparent} if traceparent else {}),
        },
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    published: list[dict[str, Any]] = json.loads(done.stdout)
    return published


def delivery_key(queue: str, job_id: str, timestamp: int) -> str:
    key = f"bullmq:{queue}:{job_id}"
    return f"{key}:{timestamp}" if job_id.isdigit() else key


# --- a private Redis that can be stopped and restarted ---------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """
    redis-server on a free port, AOF on (data survives a restart), in its own directory.
    """

    def __init__(self, directory: Path, *, policy: str = "noeviction") -> None:
        self.dir = directory
        self.port = free_port()
        self.policy = policy
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "yes", "--dir", str(self.dir),
                "--maxmemory-policy", self.policy,
                "--logfile", str(self.dir / "redis.log"),
            ],
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.2).ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "private redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        """
        Graceful shutdown (SIGTERM): the append-only file is flushed, as in a restart.
        """
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)
            self.proc = None


@contextlib.contextmanager
def private_redis(directory: Path, *, policy: str = "noeviction") -> Iterator[RedisServer]:
    server = RedisServer(directory, policy=policy)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- the CLI as an operator runs it ----------------------------------------------------------


class IngressProcess:
    """
    `broseph ingress bullmq` as a subprocess, JSON logs to a file. `hold`: run the test ingress
    instead (tests/ingress_app.py), which holds each job that long between commit and ack.
    """

    def __init__(
        self, workdir: Path, env: Mapping[str, str], name: str = "ingress", *, hold: float = 0.0
    ) -> None:
        self.log = workdir / f"{name}.log"
        self.env = {**os.environ, "LOG_FORMAT": "json", **env}
        self.command = [str(BROSEPH), "ingress", "bullmq"]
        if hold:
            self.env.update({"INGRESS_HOLD_SECONDS": str(hold), "PYTHONPATH": str(ROOT)})
            self.command = [sys.executable, "-m", "tests.ingress_app"]
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            # cwd without a .env file: only the environment configures it.
            self.proc = subprocess.Popen(
                self.command,
                cwd=self.workdir,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def events(self) -> list[dict[str, Any]]:
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                found.append(json.loads(line))
        return found

    def has(self, event: str, **fields: Any) -> bool:
        return any(
            e.get("event") == event and all(e.get(k) == v for k, v in fields.items())
            for e in self.events()
        )

    async def wait_for(self, event: str, within: float = 20.0, **fields: Any) -> None:
        deadline = time.monotonic() + within
        while not self.has(event, **fields):
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"ingress exited:\n{self.log.read_text()}")
            assert time.monotonic() < deadline, (
                f"no {event} within {within}s:\n{self.log.read_text()}"
            )
            await asyncio.sleep(0.05)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait_exit(self, within: float = 30.0) -> int:
        assert self.proc is not None
        deadline = time.monotonic() + within
        while (code := self.proc.poll()) is None:
            assert time.monotonic() < deadline, "ingress did not exit"
            await asyncio.sleep(0.05)
        return code

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# --- a TCP proxy in front of Postgres that can be cut ----------------------------------------


class CuttableProxy:
    """
    Forwards 127.0.0.1:<port> to Postgres. `cut()` drops open connections and refuses new ones
    (what the ingress sees when the database goes away); `restore()` lets them through again.
    """

    def __init__(self, target_url: str) -> None:
        params = conninfo_to_dict(target_url)
        self.target_url = target_url
        self.target = (str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432))
        self.up = True
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

    @property
    def url(self) -> str:
        assert self.server is not None
        params = conninfo_to_dict(self.target_url)
        params["host"] = "127.0.0.1"
        params["port"] = str(self.server.sockets[0].getsockname()[1])
        return make_conninfo(**params)  # type: ignore[arg-type]

    def cut(self) -> None:
        self.up = False
        for writer in list(self.writers):
            writer.close()

    def restore(self) -> None:
        self.up = True

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers.update((writer, up_writer))
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )
        self.writers.difference_update((writer, up_writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            # One side gone: close the other, which ends the opposite pipe too.
            writer.close()


def utc(ms: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)


@contextlib.asynccontextmanager
async def ingress_behind_proxy(
    settings: Settings, db_url: str
) -> AsyncIterator[tuple[CuttableProxy, str, Settings]]:
    """
    A cuttable proxy to the test database, a fresh queue, and one-at-a-time ingress settings
    for that queue that reach the database through the proxy.
    """
    proxy = CuttableProxy(db_url)
    await proxy.start()
    queue = unique_queue()
    cfg = ingress_settings(settings, queue, database_url=proxy.url, ingress_concurrency=1)
    try:
        yield proxy, queue, cfg
    finally:
        await proxy.close()
