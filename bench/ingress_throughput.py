"""
BullMQ ingress throughput: records/s from a pre-filled BullMQ queue into Postgres job records.

    python -m bench.ingress_throughput [--jobs 3000] [--concurrency 10] [--rounds 3]

Three rows per round, all in this process on the same Redis and Postgres:
  baseline  SQL enqueue: the same ProcessEngagement payloads through `broseph.enqueue`, one job per
            transaction, `concurrency` connections at once (what a Postgres producer pays);
  ceiling   BullMQ alone: the Python bullmq Worker with a no-op processor (fetch + ack only);
  ingress   `BullMQIngress`: fetch, validate, enqueue + receipt, COMMIT, ack.
Each round pre-fills a fresh queue (addBulk), then times from start to the last record (or ack),
polling every 50 ms. Ratios are to the SQL-enqueue baseline of the same round. A fresh migrated
database is created on BENCH_SERVER_URL (default: the local server) and dropped at the end; the
queues are obliterated through the bullmq Queue API. REDIS_URL picks the Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import bullmq
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from broseph import enqueue, migrate
from broseph.ingress.bullmq import BullMQIngress, worker_redis_url
from broseph.jobs.process_engagement import ProcessEngagement
from broseph.settings import Settings

SERVER = os.environ.get("BENCH_SERVER_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
DAY = "2026-03-01"


def payloads(n: int) -> list[dict[str, str]]:
    return [{"groupId": str(uuid.uuid4()), "localDate": DAY} for _ in range(n)]


async def record_count(url: str) -> int:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute("SELECT count(*) FROM broseph.job_records")
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])


async def until(done: Callable[[], Awaitable[bool]], started: float) -> float:
    while not await done():  # noqa: ASYNC110 - polling the database / Redis is the point
        await asyncio.sleep(0.05)
    return time.perf_counter() - started


async def filled_queue(n: int) -> tuple[Any, str]:
    name = f"bench-ingress-{uuid.uuid4().hex[:10]}"
    queue = bullmq.Queue(name, {"connection": REDIS})
    data = payloads(n)
    for start in range(0, n, 1000):
        await queue.addBulk(
            [{"name": "ProcessEngagement", "data": d} for d in data[start : start + 1000]]
        )
    return queue, name


async def sql_enqueue(url: str, n: int, concurrency: int) -> float:
    before = await record_count(url)
    work = [
        ProcessEngagement.model_validate({"group_id": d["groupId"], "local_date": d["localDate"]})
        for d in payloads(n)
    ]

    async def producer(share: list[ProcessEngagement]) -> None:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            for payload in share:
                await enqueue.enqueue(conn, payload, source="bench")
                await conn.commit()

    started = time.perf_counter()
    await asyncio.gather(*(producer(work[i::concurrency]) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    assert await record_count(url) == before + n
    return n / elapsed


async def bullmq_only(n: int, concurrency: int) -> float:
    queue, name = await filled_queue(n)

    async def noop(job: Any, token: str) -> None:
        return None

    try:
        started = time.perf_counter()
        worker = bullmq.Worker(
            name, noop, {"connection": worker_redis_url(REDIS), "concurrency": concurrency}
        )

        async def acked() -> bool:
            return int((await queue.getJobCounts("completed"))["completed"]) >= n

        elapsed = await until(acked, started)
        await worker.close()
        return n / elapsed
    finally:
        await queue.obliterate(force=True)
        await queue.close()


async def ingress(url: str, n: int, concurrency: int) -> float:
    queue, name = await filled_queue(n)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=url,
        redis_url=REDIS,
        ingress_queues=[name],
        ingress_concurrency=concurrency,
    )
    before = await record_count(url)
    try:
        runner = BullMQIngress(settings)
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as poll:

            async def arrived() -> bool:
                cur = await poll.execute("SELECT count(*) FROM broseph.job_records")
                row = await cur.fetchone()
                return row is not None and int(row[0]) >= before + n

            started = time.perf_counter()
            await runner.start()
            elapsed = await until(arrived, started)
        await runner.stop()
        assert await record_count(url) == before + n  # nothing twice
        return n / elapsed
    finally:
        await queue.obliterate(force=True)
        await queue.close()


async def main(jobs: int, concurrency: int, rounds: int) -> None:
    dbname = f"bench_ingress_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(SERVER, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{dbname}"')
    params = conninfo_to_dict(SERVER)
    params["dbname"] = dbname
    url = make_conninfo(**params)  # type: ignore[arg-type]
    try:
        await migrate.migrate(url)
        results: dict[str, list[float]] = {"sql": [], "bullmq": [], "ingress": []}
        for _ in range(rounds):
            results["sql"].append(await sql_enqueue(url, jobs, concurrency))
            results["bullmq"].append(await bullmq_only(jobs, concurrency))
            results["ingress"].append(await ingress(url, jobs, concurrency))
        report(results, jobs, concurrency, rounds)
    finally:
        with psycopg.connect(SERVER, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def report(results: dict[str, list[float]], jobs: int, concurrency: int, rounds: int) -> None:
    labels = {
        "sql": "SQL enqueue, 1 job/txn (baseline)",
        "bullmq": "BullMQ fetch + ack only (no-op)",
        "ingress": "BullMQ ingress → Postgres record",
    }
    print(
        f"\n{jobs} jobs per round, concurrency {concurrency}, {rounds} rounds; "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, bullmq {bullmq.__version__}\n"
    )
    print("| path | records/s (median) | min–max | ratio to baseline (median) |")
    print("|---|---:|---:|---:|")
    for key, label in labels.items():
        values = results[key]
        ratios = [v / b for v, b in zip(values, results["sql"], strict=True)]
        print(
            f"| {label} | {statistics.median(values):,.0f} | {min(values):,.0f}–{max(values):,.0f}"
            f" | {statistics.median(ratios):.2f}× |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.jobs, args.concurrency, args.rounds))
