"""
What a worker checks when it starts, before its first job:

- the outside services' configuration (FIREBASE_CREDENTIALS_FILE, OPENAI_API_KEY,
  OPENAI_BASE_URL, FCM_BASE_URL), from the app's own settings: invalid → one line and exit;
- only for the services its queues' job types use: a worker without push jobs runs its jobs with
  a broken push configuration;
- `--delete-jobs` other than `never` is refused (a deleted queue row reads as a cancelled job).

And every failure of an attempt reaches the record's last_error and the log, even one before the
handler runs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import procrastinate
import psycopg
import pytest
import structlog

from broseph import enqueue, worker
from broseph.jobs.process_engagement import ProcessEngagement
from broseph.problems import Problem
from broseph.settings import Settings
from tests import factories
from tests.conftest import wait_until
from tests.prompt_support import ai_settings
from tests.secrets_support import Process, command, env, error_lines, run
from tests.standins.openai_server import OpenAIStandIn

WORKERS = {
    "broseph": command("broseph", "worker"),
    "procrastinate": command("procrastinate", "--app", "broseph.worker.app", "worker"),
}


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("credentials")
    files = {
        "not JSON": '{"type": "service_account", "project_id": "p"',
        "not a service account": json.dumps({"type": "authorized_user", "project_id": "p"}),
        "no project": json.dumps({"type": "service_account"}),
        "broken key": json.dumps(
            {
                "type": "service_account",
                "project_id": "p",
                "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----\n",
                "client_email": "push@p.iam.gserviceaccount.com",
                "token_uri": "https://oauth2.googleapis.com/token",
            }
        ),
    }
    paths = {}
    for name, text in files.items():
        paths[name] = folder / f"{name.replace(' ', '-')}.json"
        paths[name].write_text(text)
    return paths


CAUSES = {
    "missing": "does not exist",
    "not JSON": "is not valid JSON (Expecting ',' delimiter at line 1)",
    "not a service account": "is not a service-account key (its type is 'authorized_user'",
    "no project": "names no project_id — set FIREBASE_PROJECT_ID",
    "broken key": "is not a usable service-account key (Failed to initialize a certificate",
}


@pytest.mark.parametrize("case", list(CAUSES))
@pytest.mark.parametrize("started_by", sorted(WORKERS))
def test_unusable_push_credentials_stop_the_worker_with_one_line(
    db_url: str, bad_files: dict[str, Path], started_by: str, case: str
) -> None:
    path = str(bad_files.get(case, "/nonexistent/service-account.json"))
    result = run(WORKERS[started_by], env(DATABASE_URL=db_url, FIREBASE_CREDENTIALS_FILE=path))
    assert result.returncode == (2 if started_by == "broseph" else 1), result.stderr
    [line] = error_lines(result.stderr)
    assert f"FIREBASE_CREDENTIALS_FILE {path} {CAUSES[case]}" in line
    assert " — " in line and "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("setting", "value", "cause"),
    [
        ("OPENAI_API_KEY", "sk-abc def", "OPENAI_API_KEY contains spaces, line breaks or"),
        ("OPENAI_BASE_URL", "localhost:8080/v1", "OPENAI_BASE_URL is not an http(s) URL"),
    ],
)
def test_unusable_openai_settings_stop_the_worker_with_one_line(
    db_url: str, setting: str, value: str, cause: str
) -> None:
    extra = {setting: value}
    extra.setdefault("OPENAI_API_KEY", "sk-test-0123456789abcdef")
    result = run(WORKERS["broseph"], env(DATABASE_URL=db_url, **extra))
    assert result.returncode == 2
    [line] = error_lines(result.stderr)
    assert line.startswith(f"error: {cause}") and "sk-" not in line


async def test_a_worker_without_push_jobs_does_not_need_push_configuration(
    db_url: str, conn: psycopg.AsyncConnection[Any]
) -> None:
    """
    A worker serving only the engagement queue starts with a broken FIREBASE_CREDENTIALS_FILE
    and completes its jobs (it used to fail every job, with an empty last_error).
    """
    gid = await factories.group(conn)
    record_id = await enqueue.enqueue(
        conn, ProcessEngagement(group_id=gid, local_date="2026-01-01")
    )
    process = Process(
        [*WORKERS["broseph"], "--queue", "engagement"],
        env(
            DATABASE_URL=db_url,
            FIREBASE_CREDENTIALS_FILE="/nonexistent/service-account.json",
            POLL_INTERVAL="0.5",
        ),
    )
    try:

        async def finished() -> bool:
            cur = await conn.execute(
                "SELECT status FROM broseph.job_records WHERE id = %s", (record_id,)
            )
            row = await cur.fetchone()
            return bool(row and row["status"] in ("completed", "failed"))

        await wait_until(finished, within=60)
        assert process.terminate() == 0
    finally:
        process.close()
    cur = await conn.execute(
        "SELECT status, last_error FROM broseph.job_records WHERE id = %s", (record_id,)
    )
    assert await cur.fetchone() == {"status": "completed", "last_error": None}


async def test_services_come_from_the_apps_settings_at_start(settings: Settings) -> None:
    """
    The app's settings decide, not the environment (which has no FIREBASE_CREDENTIALS_FILE).
    """
    broken = settings.model_copy(update={"firebase_credentials_file": "/nonexistent/sa.json"})
    app = worker.create_app(broken, periodic=False)
    async with app.open_async():
        with pytest.raises(Problem, match=r"FIREBASE_CREDENTIALS_FILE /nonexistent/sa\.json does"):
            await app.run_worker_async(install_signal_handlers=False, wait=False)


async def test_prompts_use_the_ai_of_the_apps_settings(
    settings: Settings, conn: psycopg.AsyncConnection[Any]
) -> None:
    """
    OPENAI_API_KEY is set in the app's settings only: the worker's prompts come from OpenAI
    (the stand-in), built once at start.
    """
    from tests.prompt_support import enqueue_prompt

    with OpenAIStandIn() as standin:
        app = worker.create_app(ai_settings(settings, standin), periodic=False)
        gid = await factories.group(conn)
        record_id = await enqueue_prompt(conn, gid)
        async with app.open_async():
            await app.run_worker_async(install_signal_handlers=False, wait=False)
        assert len(standin.requests) == 1
    cur = await conn.execute(
        "SELECT p.source, r.status FROM public.prompts p"
        " JOIN broseph.job_records r ON r.id = %s WHERE p.group_id = %s",
        (record_id, gid),
    )
    assert await cur.fetchone() == {"source": "openai", "status": "completed"}


async def test_a_failure_before_the_handler_reaches_the_record_and_the_log(
    settings: Settings, conn: psycopg.AsyncConnection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    """
    Jobs run by procrastinate's Worker directly (no start-up checks): the services are built on
    the first job and fail; the record says why and so does the log — never an empty error.
    """
    from procrastinate.worker import Worker

    broken = settings.model_copy(update={"firebase_credentials_file": "/nonexistent/sa.json"})
    app = worker.create_app(broken, periodic=False)
    gid = await factories.group(conn)
    record_id = await enqueue.enqueue(
        conn, ProcessEngagement(group_id=gid, local_date="2026-01-01"), retry={"max_attempts": 1}
    )
    caplog.set_level(logging.INFO)
    with structlog.testing.capture_logs() as events:
        async with app.open_async():
            await Worker(app, wait=False, install_signal_handlers=False).run()
    cur = await conn.execute(
        "SELECT status, last_error FROM broseph.job_records WHERE id = %s", (record_id,)
    )
    row = await cur.fetchone()
    cause = "Problem: FIREBASE_CREDENTIALS_FILE /nonexistent/sa.json does not exist — "
    assert row is not None and row["status"] == "failed"
    assert row["last_error"].startswith(cause)
    [failed] = [e for e in events if e["event"] == "job_failed"]
    assert failed["error"].startswith(cause)
    [line] = [r for r in caplog.records if getattr(r, "action", None) == "job_error"]
    assert line.exc_info is not None  # the traceback goes with procrastinate's line


# --- --delete-jobs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "how",
    [["--delete-jobs=successful"], ["--delete-jobs=always"], ["PROCRASTINATE_WORKER_DELETE_JOBS"]],
)
def test_deleting_finished_jobs_is_refused(db_url: str, how: list[str]) -> None:
    extra = {}
    args = how
    if how == ["PROCRASTINATE_WORKER_DELETE_JOBS"]:
        extra, args = {"PROCRASTINATE_WORKER_DELETE_JOBS": "successful"}, []
    result = run([*WORKERS["procrastinate"], *args], env(DATABASE_URL=db_url, **extra))
    assert result.returncode == 1
    [line] = error_lines(result.stderr)
    assert line.startswith("--delete-jobs=") and "job records saying 'cancelled'" in line
    assert "Traceback" not in result.stderr


async def test_deleting_is_refused_in_process_too(app: procrastinate.App) -> None:
    with pytest.raises(Problem, match="--delete-jobs=successful would delete"):
        await app.run_worker_async(
            delete_jobs="successful", install_signal_handlers=False, wait=False
        )


async def test_delete_jobs_never_is_allowed(
    db_url: str, conn: psycopg.AsyncConnection[Any]
) -> None:
    gid = await factories.group(conn)
    record_id = await enqueue.enqueue(
        conn, ProcessEngagement(group_id=gid, local_date="2026-01-01")
    )
    process = Process(
        [*WORKERS["procrastinate"], "--delete-jobs=never", "--queues=engagement"],
        env(DATABASE_URL=db_url, POLL_INTERVAL="0.5"),
    )
    try:

        async def completed() -> bool:
            cur = await conn.execute(
                "SELECT status FROM broseph.job_records WHERE id = %s", (record_id,)
            )
            row = await cur.fetchone()
            return bool(row and row["status"] == "completed")

        await wait_until(completed, within=60)
        assert process.terminate() == 0
    finally:
        process.close()
    cur = await conn.execute(
        "SELECT j.status FROM procrastinate_jobs j JOIN broseph.job_records r"
        " ON r.procrastinate_job_id = j.id WHERE r.id = %s",
        (record_id,),
    )
    assert await cur.fetchone() == {"status": "succeeded"}  # the queue row stays


@pytest.fixture(autouse=True)
def _no_secret_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # In-process apps read only what the tests give them.
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("FIREBASE_CREDENTIALS_FILE", raising=False)
    yield
