"""
One lifecycle for every task: periodic ticks — the catalogue's and the operations ticks alike —
are registered through `broseph.lifecycle` and log `job_start` / `job_complete` / `job_failed`
and count in the job metrics like any job.
"""

from __future__ import annotations

import structlog
from prometheus_client import REGISTRY

from broseph import jobs, lifecycle, worker
from broseph.jobs.base import Periodic
from broseph.ops import periodic as ops_periodic
from broseph.services import Services
from tests.conftest import wait_until


def _count(job_type: str, outcome: str) -> float:
    return (
        REGISTRY.get_sample_value("broseph_jobs_total", {"job_type": job_type, "outcome": outcome})
        or 0.0
    )


def _timed(job_type: str) -> float:
    return (
        REGISTRY.get_sample_value("broseph_job_duration_seconds_count", {"job_type": job_type})
        or 0.0
    )


def test_every_task_is_registered_through_the_lifecycle(settings):
    app = worker.create_app(settings)  # builds only: connects to nothing
    # Every task but procrastinate's own built-ins (registered under two names each).
    ours = {
        name: task
        for name, task in app.tasks.items()
        if not task.func.__module__.startswith("procrastinate.")
    }
    periodic = (*jobs.PERIODIC, *ops_periodic.PERIODIC)

    assert set(ours) == set(jobs.CATALOGUE) | {p.name for p in periodic}
    assert {name: task.func.__module__ for name, task in ours.items()} == {
        name: lifecycle.__name__ for name in ours
    }
    ticks = {t.periodic_id: t.task.name for t in app.periodic_registry.periodic_tasks.values()}
    assert ticks == {p.name: p.name for p in periodic}
    for entry in periodic:
        assert (ours[entry.name].queue, ours[entry.name].priority) == (entry.queue, entry.priority)
    assert ours["ops_rescue"].priority == ops_periodic.RESCUE_PRIORITY


async def _broken(svc: Services, timestamp: int) -> None:
    raise RuntimeError(f"tick {timestamp} broke")


BROKEN = Periodic(name="test_broken_tick", cron=lambda s: "* * * * *", run=_broken)


async def test_a_periodic_tick_logs_and_counts_like_a_job(app, settings, start_worker):
    # The app fixture schedules nothing: register the real retention tick and a failing one,
    # and defer each once, as their cron would.
    retention = next(p for p in ops_periodic.PERIODIC if p.name == "ops_retention")
    for entry in (retention, BROKEN):
        lifecycle.register_periodic(app, settings, entry, schedule=False)
    before = {
        "completed": _count("ops_retention", "completed"),
        "failed": _count(BROKEN.name, "failed"),
        "timed": _timed("ops_retention") + _timed(BROKEN.name),
    }
    with structlog.testing.capture_logs() as logs:
        await app.tasks["ops_retention"].defer_async(timestamp=1_700_000_000)
        await app.tasks[BROKEN.name].defer_async(timestamp=1_700_000_060)
        await start_worker(fetch_job_polling_interval=0.1)

        async def both_finished() -> bool:
            ends = {(e["event"], e.get("job_type")) for e in logs}
            return {("job_complete", "ops_retention"), ("job_failed", BROKEN.name)} <= ends

        await wait_until(both_finished, within=20)

    def events(job_type: str) -> list[str]:
        return [e["event"] for e in logs if e.get("job_type") == job_type]

    assert events("ops_retention") == ["job_start", "job_complete"]
    assert events(BROKEN.name) == ["job_start", "job_failed"]
    failed = next(e for e in logs if e["event"] == "job_failed")
    assert failed["error"] == "RuntimeError: tick 1700000060 broke"
    assert failed["retrying"] is False
    assert _count("ops_retention", "completed") == before["completed"] + 1
    assert _count(BROKEN.name, "failed") == before["failed"] + 1
    assert _timed("ops_retention") + _timed(BROKEN.name) == before["timed"] + 2
