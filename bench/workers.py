"""
Bench-only jobs and the worker processes that run them.

Kinds of worker, all real processes started as `python -m bench.workers …`:
  ours  broseph's app (`broseph.worker.create_app`, the full lifecycle) plus a bench-only no-op
        job type per queue, registered in the bench database only — never in the catalogue;
  raw   a stock procrastinate App with a no-op task: the baseline;
  pgq   PgQueuer's default worker with a no-op entrypoint (bench/pgq.py): the second baseline;
  wave  broseph's app and services against the stand-ins (bench/wave.py).
The procrastinate no-ops optionally send "<id> <time>" by UDP when they start (the pick-up
latency beacon). Each process connects with its own application_name (PGAPPNAME), so its
Postgres backends can be told apart (bench/cpu.py), and counts its round trips into a file
(bench/roundtrips.py).
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import os
import signal
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Annotated, Any, ClassVar

import google.oauth2.credentials
import procrastinate
import psycopg
import typer
from procrastinate import job_context
from psycopg_pool import AsyncConnectionPool
from pydantic import SecretStr

from bench import database, roundtrips
from broseph import lifecycle, logs, services, worker
from broseph.jobs.base import JobPayload, JobRun, JobType
from broseph.providers.push_fcm import FcmPushSender
from broseph.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
RAW_TASK = "bench_raw_noop"
BEACON_ENV = "BENCH_BEACON"
ROUND_TRIPS_ENV = "BENCH_ROUND_TRIPS"
WORKER_APP = "bench-worker-"


class NoopPayload(JobPayload):
    """
    The shape of a typical job's payload (ids only): a group and a local day.
    """

    job_type: ClassVar[str] = "BenchNoop"
    group_id: uuid.UUID
    local_date: datetime.date


@functools.cache
def _payload_type(queue: str) -> type[NoopPayload]:
    name = f"BenchNoop_{queue}"
    return type(name, (NoopPayload,), {"job_type": name, "__module__": __name__})


@functools.cache
def noop_type(queue: str) -> JobType:
    """
    A no-op job type on its own queue ("BenchNoop_<queue>"): workers of different configurations
    stay alive side by side without taking each other's jobs.
    """
    payload = _payload_type(queue)
    return JobType(
        name=payload.job_type, payload=payload, handle=_noop, queue=queue, max_attempts=1
    )


def noop_payload(queue: str, group_id: uuid.UUID, local_date: datetime.date) -> JobPayload:
    return _payload_type(queue)(group_id=group_id, local_date=local_date)


@functools.cache
def _beacon() -> tuple[socket.socket, tuple[str, int]] | None:
    target = os.environ.get(BEACON_ENV)
    if not target:
        return None
    host, port = target.rsplit(":", 1)
    return socket.socket(socket.AF_INET, socket.SOCK_DGRAM), (host, int(port))


def signal_start(job_key: str) -> None:
    """
    Tell the bench this job's handler started, with the time (pick-up latency).
    """
    beacon = _beacon()
    if beacon is not None:
        sock, address = beacon
        sock.sendto(f"{job_key} {time.time():.6f}".encode(), address)


async def _noop(run: JobRun, payload: Any) -> None:
    signal_start(str(run.record_id))
    # The one progress update of the benchmark's "full lifecycle".
    await run.progress(50, "halfway")


async def _raw_noop(context: job_context.JobContext, /, **kwargs: Any) -> None:
    signal_start(str(context.job.id))


def raw_app(url: str, *, concurrency: int = 10) -> procrastinate.App:
    """
    A stock procrastinate App with the no-op task, its pool sized like ours.
    """
    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(
            conninfo=url, min_size=1, max_size=max(10, concurrency + 2)
        )
    )
    app.task(name=RAW_TASK, queue="bench_raw", pass_context=True)(_raw_noop)
    return app


def ours_settings(url: str, concurrency: int) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=url,
        worker_concurrency=concurrency,
        log_format="json",
        log_level="INFO",
    )


def ours_app(url: str, queues: list[str], concurrency: int) -> procrastinate.App:
    """
    broseph's worker app (periodic tasks off: every job a benchmark sees is one it made) with
    the bench no-op types of these queues.
    """
    app = worker.create_app(ours_settings(url, concurrency), periodic=False)
    for queue in queues:
        lifecycle.register(app, noop_type(queue))
    return app


# --- the worker process -------------------------------------------------------------------------

cli = typer.Typer(add_completion=False)


@cli.command()
def main(
    kind: Annotated[str, typer.Option(help="ours | raw | pgq | wave")],
    url: Annotated[str, typer.Option(help="Database URL.")],
    queue: Annotated[list[str] | None, typer.Option(help="Queue to serve (repeatable).")] = None,
    concurrency: Annotated[int, typer.Option()] = 10,
    openai_url: Annotated[str | None, typer.Option(help="wave: the OpenAI stand-in.")] = None,
    fcm_url: Annotated[str | None, typer.Option(help="wave: the FCM stand-in.")] = None,
    loop: Annotated[
        str, typer.Option(help="asyncio | uvloop: the event loop (uvloop: a measured option).")
    ] = "asyncio",
) -> None:
    """
    Run one bench worker until SIGTERM, logging JSON at INFO to stderr as production does.
    """
    # The raw baseline logs as raw procrastinate does at its default level (INFO): its own
    # per-job lines, which broseph's workers replace with broseph.job's.
    logs.configure("json", "INFO", procrastinate_job_lines=kind == "raw")
    if os.environ.get(ROUND_TRIPS_ENV):
        roundtrips.install(Path(os.environ[ROUND_TRIPS_ENV]))
    if kind == "pgq":
        from bench import pgq  # PgQueuer (the bench extra) only where it is used

        asyncio.run(pgq.serve(url))
        return
    serve = _serve(kind, url, queue or [], concurrency, openai_url, fcm_url)
    if loop == "uvloop":
        import uvloop  # installed for the measurement only (docs/benchmarks.md)

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve)
        return
    asyncio.run(serve)


async def _serve(
    kind: str,
    url: str,
    queues: list[str],
    concurrency: int,
    openai_url: str | None,
    fcm_url: str | None,
) -> None:
    settings = ours_settings(url, concurrency)
    if kind == "ours":
        app = ours_app(url, queues, concurrency)
        options: dict[str, Any] = worker.worker_options(settings)
    elif kind == "wave":
        settings = settings.model_copy(
            update={"openai_api_key": SecretStr("bench-key"), "openai_base_url": openai_url}
        )
        app = worker.create_app(settings, periodic=False)
        options = worker.worker_options(settings)
    elif kind == "raw":
        app = raw_app(url, concurrency=concurrency)
        options = {}
    else:
        raise typer.BadParameter(f"unknown worker kind {kind!r}")
    options.update(queues=queues or None, concurrency=concurrency, install_signal_handlers=True)
    async with app.open_async():
        if kind == "ours":
            services.install(app, services.build(settings, services.pool_of(app)))
        elif kind == "wave":
            services.install(app, wave_services(settings, services.pool_of(app), fcm_url))
        await app.run_worker_async(**options)


def wave_services(
    settings: Settings, pool: AsyncConnectionPool[Any], fcm_url: str | None
) -> services.Services:
    """
    The real services, with the real SDKs pointed at the stand-ins: OpenAI by OPENAI_BASE_URL,
    FCM (firebase-admin, which needs some credentials and has no endpoint option) by the push
    adapter's `fcm_url` and a fixed access token.
    """
    push = FcmPushSender(
        credentials=google.oauth2.credentials.Credentials(token="bench"),  # type: ignore[no-untyped-call]
        project_id="broseph-bench",
        fcm_url=fcm_url,
    )
    return services.Services(
        settings=settings, pool=pool, ai=services.prompt_generator(settings), push=push
    )


# --- the parent's handle on a worker process ----------------------------------------------------


class WorkerProcess:
    """
    A bench worker subprocess: started, awaited until it has registered, measured, stopped.
    """

    def __init__(
        self,
        kind: str,
        url: str,
        queues: list[str],
        *,
        concurrency: int,
        log_file: Path,
        beacon: str | None = None,
        extra: dict[str, str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.kind, self.url, self.queues = kind, url, queues
        self.concurrency = concurrency
        self.log_file = log_file
        self.beacon = beacon
        self.extra = extra or {}
        self.env = env or {}
        self.process: asyncio.subprocess.Process | None = None
        # What tells its backends and its round trips apart from everyone else's.
        self.app_name = WORKER_APP + log_file.stem
        self.round_trips_file = log_file.with_suffix(".trips")

    async def start(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        env.pop(BEACON_ENV, None)
        if self.beacon:
            env[BEACON_ENV] = self.beacon
        env.update(self.env)
        env["PGAPPNAME"] = self.app_name
        env[ROUND_TRIPS_ENV] = str(self.round_trips_file)
        args = ["--kind", self.kind, "--url", self.url, "--concurrency", str(self.concurrency)]
        for queue in self.queues:
            args += ["--queue", queue]
        for option, value in self.extra.items():
            args += [f"--{option}", value]
        with self.log_file.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.workers",
                *args,
                cwd=ROOT,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log,
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def rss_mb(self) -> float:
        """
        Resident set size now (VmRSS of /proc/<pid>/status), in MiB.
        """
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(f"no VmRSS for pid {self.pid}")

    def check_alive(self) -> None:
        if self.process is not None and self.process.returncode is not None:
            tail = self.log_file.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{self.kind} worker exited ({self.process.returncode}):\n{tail}")

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), timeout=20)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


async def start_all(url: str, workers: list[WorkerProcess], *, within: float = 180.0) -> None:
    """
    Start the processes and wait until every one has registered and is listening.
    """
    procrastinate_kinds = [w for w in workers if w.kind != "pgq"]
    others = [w.app_name for w in workers if w.kind == "pgq"]
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        before = (await database.one(conn, "SELECT count(*) FROM procrastinate_workers"))[0]
        for w in workers:
            await w.start()
        deadline = time.monotonic() + within
        while True:
            for w in workers:
                w.check_alive()
            # procrastinate workers register themselves; PgQueuer's show up connected.
            registered, connected = await database.one(
                conn,
                "SELECT (SELECT count(*) FROM procrastinate_workers),"
                " (SELECT count(DISTINCT application_name) FROM pg_stat_activity"
                "  WHERE application_name = ANY(%s::text[]))",
                (others,),
            )
            if registered >= before + len(procrastinate_kinds) and connected >= len(others):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"bench workers not registered within {within:g} s")
            await asyncio.sleep(0.1)
    # Registration comes just before LISTEN and the first fetch: let those happen.
    await asyncio.sleep(1.0)


async def stop_all(workers: list[WorkerProcess]) -> None:
    await asyncio.gather(*(w.stop() for w in workers))


if __name__ == "__main__":
    cli()
