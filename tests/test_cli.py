"""
The commands exactly as an operator types them: the README's demo, and procrastinate's shell.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import psycopg
import pytest

from tests.conftest import env_with, venv_bin


def _run(args: list[str], *, env: dict[str, str], cwd: Path, stdin: str | None = None):
    # Console scripts of this venv, as an operator with the venv activated would type them.
    command = [str(venv_bin(args[0])), *args[1:]]
    return subprocess.run(
        command, env=env, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=240
    )


@pytest.fixture
def no_database_env() -> dict[str, str]:
    env = env_with(COLUMNS="160")
    env.pop("DATABASE_URL", None)
    return env


def test_demo_on_embedded_postgres_then_shell_lists_its_jobs(tmp_path, no_database_env):
    """
    `broseph demo` with no DATABASE_URL (the README's first command), then
    `procrastinate --app broseph.worker.app shell` against the demo's database.
    """
    demo = _run(["broseph", "demo", "--groups", "4"], env=no_database_env, cwd=tmp_path)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "started an embedded Postgres" in demo.stdout
    assert re.search(r"ProcessEngagement\s*│\s*completed", demo.stdout), demo.stdout
    assert "Daily engagement" in demo.stdout

    # The embedded server stopped with the demo; start it again on the same data to inspect.
    from broseph import embedded

    server, url = embedded.start(tmp_path / ".broseph" / "demo-pg")
    try:
        demo_url = psycopg.conninfo.make_conninfo(url, dbname="broseph_demo")
        with psycopg.connect(demo_url) as conn:
            (jobs,) = conn.execute(
                "SELECT count(*) FROM procrastinate_jobs"
                " WHERE status = 'succeeded' AND task_name = 'ProcessEngagement'"
            ).fetchone()
        assert jobs > 0
        shell = _run(
            ["procrastinate", "--app", "broseph.worker.app", "shell"],
            env=env_with(DATABASE_URL=demo_url),
            cwd=tmp_path,
            stdin="list_jobs\nlist_tasks\n",
        )
        assert shell.returncode == 0, shell.stderr
        listed = re.findall(r"#\d+ ProcessEngagement on engagement - \[succeeded\]", shell.stdout)
        assert len(listed) == jobs
    finally:
        server.cleanup()


def test_demo_uses_database_url_when_set(db_url, tmp_path):
    demo = _run(
        ["broseph", "demo", "--groups", "2"],
        env=env_with(DATABASE_URL=db_url, COLUMNS="160"),
        cwd=tmp_path,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "embedded" not in demo.stdout
    with psycopg.connect(db_url) as conn:
        (groups,) = conn.execute("SELECT count(*) FROM public.groups").fetchone()
        (open_jobs,) = conn.execute(
            "SELECT count(*) FROM broseph.job_records WHERE status <> 'completed'"
        ).fetchone()
    assert groups == 2 and open_jobs == 0


def test_enqueue_command_validates_and_writes(db_url, tmp_path):
    env = env_with(DATABASE_URL=db_url)
    bad = _run(
        [
            "broseph",
            "enqueue",
            "ProcessEngagement",
            '{"group_id": "x", "local_date": "2026-01-01"}',
        ],
        env=env,
        cwd=tmp_path,
    )
    assert bad.returncode != 0 and "group_id" in bad.stderr
    with psycopg.connect(db_url, autocommit=True) as conn:
        (gid,) = conn.execute(
            "INSERT INTO public.groups (name) VALUES ('g') RETURNING id::text"
        ).fetchone()
    good = _run(
        [
            "broseph",
            "enqueue",
            "ProcessEngagement",
            f'{{"group_id": "{gid}", "local_date": "2026-01-01"}}',
            "--idempotency-key",
            "cli-1",
        ],
        env=env,
        cwd=tmp_path,
    )
    assert good.returncode == 0, good.stderr
    with psycopg.connect(db_url) as conn:
        (source,) = conn.execute(
            "SELECT source FROM broseph.job_records WHERE id = %s", (good.stdout.strip(),)
        ).fetchone()
    assert source == "cli"
