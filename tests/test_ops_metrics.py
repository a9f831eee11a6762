"""
The worker's Prometheus endpoint: a scrape before and after shows the counters moving — jobs by
type and outcome, the duration histogram, rescues — and the sampled queue gauges.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.ops_support import enqueue_naps, wait_for
from tests.pgcluster import free_port

pytest_plugins = ("tests.ops_fixtures",)  # cluster, ops_url, ops_conn, workers


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_scrape_shows_counters_and_gauges_moving(ops_conn, workers):
    port = free_port()
    # Serve only the test and ops queues: an engagement job then waits, visibly.
    await workers(
        "w",
        METRICS_PORT=str(port),
        METRICS_ADDR="127.0.0.1",
        METRICS_SAMPLE_SECONDS="0.2",
        WORKER_QUEUES="test,ops",
    )
    before = await asyncio.to_thread(scrape, port)
    completed = ("broseph_jobs_total", {"job_type": "TestNap", "outcome": "completed"})

    ids = await enqueue_naps(ops_conn, 5, millis=10)
    assert (await wait_for(ops_conn, ids, within=15)).completed == 5
    await ops_conn.execute(
        "SELECT broseph.enqueue('ProcessEngagement', jsonb_build_object("
        "'group_id', gen_random_uuid()::text, 'local_date', '2026-01-01'))"
    )
    # A lost worker holding one job: the worker's rescue tick (every second) frees it.
    cur = await ops_conn.execute(
        "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - interval '1 hour')"
        " RETURNING id"
    )
    lost = (await cur.fetchone())["id"]
    async with ops_conn.transaction():  # taken before the live worker can see it
        [stuck] = await enqueue_naps(ops_conn, 1, millis=0)
        await ops_conn.execute("SELECT procrastinate_fetch_job_v2(ARRAY['test'], %s)", (lost,))

    deadline = time.monotonic() + 20
    while True:
        after = await asyncio.to_thread(scrape, port)
        if (
            value(after, "broseph_rescued_jobs_total", action="retried") >= 1
            and value(after, "broseph_queue_depth", queue="engagement", status="todo") == 1
            and value(after, "broseph_oldest_pending_seconds", queue="engagement") > 0
            and value(after, completed[0], **completed[1]) >= 6
            and value(after, "broseph_queue_depth", queue="test", status="succeeded") == 6
        ):
            break
        assert time.monotonic() < deadline, [
            (k, v) for k, v in after.items() if k[0].startswith(("broseph_r", "broseph_o"))
        ]
        await asyncio.sleep(0.2)

    assert value(before, completed[0], **completed[1]) == 0
    assert value(after, completed[0], **completed[1]) == 6  # 5 + the rescued one, rerun
    duration = "broseph_job_duration_seconds_count"
    assert (
        value(after, duration, job_type="TestNap") - value(before, duration, job_type="TestNap")
        == 6
    )
    assert (await wait_for(ops_conn, [stuck], within=5)).completed == 1
