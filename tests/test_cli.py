"""
The commands exactly as an operator types them: the README's demo (into a file, and with --keep
and the commands it prints: `broseph jobs`, procrastinate's shell, the dashboard).
"""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import psycopg
import pytest

from broseph import jobs
from broseph.demo import world
from tests.conftest import env_with, venv_bin
from tests.pgcluster import free_port


def _run(args: list[str], *, env: dict[str, str], cwd: Path, stdin: str | None = None):
    # Console scripts of this venv, as an operator with the venv activated would type them.
    command = [str(venv_bin(args[0])), *args[1:]]
    return subprocess.run(
        command, env=env, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=240
    )


@pytest.fixture
def no_database_env() -> dict[str, str]:
    env = env_with()
    env.pop("DATABASE_URL", None)
    env.pop("COLUMNS", None)
    return env


UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def test_demo_as_the_readme_says_into_a_file(tmp_path, no_database_env):
    """
    `.venv/bin/broseph demo` with no DATABASE_URL (the README's first command), its output
    redirected to a file: every value whole, no live frames, each job type's section, and a
    closing hint that can be followed.
    """
    out = tmp_path / "demo.txt"
    with out.open("w") as stdout:
        demo = subprocess.run(
            [str(venv_bin("broseph")), "demo"],
            env=no_database_env,
            cwd=tmp_path,
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            timeout=240,
        )
    text = out.read_text()
    assert demo.returncode == 0, text + demo.stderr
    assert "…" not in text  # nothing cut short
    lines = text.splitlines()
    # Every time zone whole, and every title at the start of its own line (no frame runs into it).
    for zone in (*world.TIME_ZONES, world.CROWD[1]):
        assert zone in text, zone
    titles = (
        "Jobs",
        "GeneratePrompt:",
        "Pushes delivered",
        "DeliverGroupEvent:",
        "ProcessEngagement:",
    )
    for title in titles:
        assert sum(line.startswith(title) for line in lines) == 1, title
    assert "(live)" not in text
    # The jobs table: every job type done, its "max attempts" the type's own limit.
    for name, job_type in jobs.CATALOGUE.items():
        if name in ("NotifyMembers", "SendNotification"):
            # Since migrations/0040 the demo's notifications are group deliveries: NotifyMembers
            # is retired, SendNotification is for reminders and quiet hours, not in a demo run.
            continue
        row = re.search(rf"^ {name} +completed +(\d+) +(\d+) +(\d+) *$", text, re.MULTILINE)
        assert row, name
        assert int(row[3]) == job_type.max_attempts and int(row[2]) >= 1, (name, row[0])
    # Each job type did what it exists for.
    assert re.search(r"offline +\S", text)  # a prompt stored
    assert re.search(
        r"^Pushes in the outbox: friend_joined \d+, new_message \d+, new_prompt \d+", text, re.M
    )
    assert re.search(r"Running club +friend_joined +1 +30 +completed", text)  # a fan-out
    rates = re.findall(r"^ (?:\S+ )*\S+ +\d{4}-\d{2}-\d{2}(?: +[\d.]+){4} +(\d+)%", text, re.M)
    assert len(rates) >= 7 and all(0 < int(r) <= 100 for r in rates), rates  # answered prompts
    shows = re.findall(rf"broseph jobs show ({UUID})  # (\w+)$", text, re.MULTILINE)
    assert {kind for _, kind in shows} == {"friend_joined", "new_message", "new_prompt"}
    # Every sentence true: the server stops, the next run starts from nothing, --keep says how.
    assert "stays in" not in text and "reuse" not in text
    assert lines[-1].startswith("The embedded Postgres stops now") and "--keep" in lines[-1]


def _kept_commands(output: str) -> list[str] | None:
    """
    The commands `broseph demo --keep` printed, once all five lines are out; else None.
    """
    marker = "In another terminal, from this directory:\n"
    if marker not in output:
        return None
    lines = output.split(marker, 1)[1].splitlines(keepends=True)
    commands = [line.strip() for line in lines if line.startswith("  ") and line.endswith("\n")]
    return commands if len(commands) == 5 else None


def test_demo_keep_prints_commands_that_work_until_ctrl_c(tmp_path, no_database_env):
    """
    `broseph demo --keep` in the background: the URL and commands it prints are run as printed
    (the dashboard on a free port instead of 8080, on a shared machine), then Ctrl-C stops the
    demo and its embedded server.
    """
    out = tmp_path / "keep.txt"
    with out.open("w") as stdout:
        demo = subprocess.Popen(
            [str(venv_bin("broseph")), "demo", "--keep", "--groups", "2"],
            env=no_database_env,
            cwd=tmp_path,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        deadline = time.monotonic() + 240
        # Ready: all five commands printed, each to its end of line (not a fixed sleep).
        while (commands := _kept_commands(out.read_text())) is None:
            assert demo.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.2)
        export, listing, stats, shell, dashboard = commands
        assert export.startswith("export DATABASE_URL=")
        url = shlex.split(export.removeprefix("export "))[0].removeprefix("DATABASE_URL=")
        env = {k: v for k, v in no_database_env.items() if k != "DATABASE_URL"}

        def sh(command: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["bash", "-c", f"{export}\n{command}"],
                env=env,
                cwd=tmp_path,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=120,
            )

        listed = sh(listing)
        assert listed.returncode == 0, listed.stderr
        fanouts = re.findall(rf"^│ ({UUID}) │ DeliverGroupEvent │ completed │", listed.stdout, re.M)
        assert len(fanouts) >= 3, listed.stdout
        assert re.search(r"│ \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}Z │", listed.stdout)  # UTC, said
        assert "DeliverGroupEvent" in sh(stats).stdout
        inside = sh(shell, stdin="list_jobs\n")
        assert inside.returncode == 0, inside.stderr
        assert re.search(r"#\d+ DeliverGroupEvent on notifications - \[succeeded\]", inside.stdout)

        command, _, comment = dashboard.partition("#")
        assert "http://127.0.0.1:8080/" in comment
        port = free_port()
        pages = subprocess.Popen(
            ["bash", "-c", f"{export}\nexec {command} --port {port}"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            page = _page(f"http://127.0.0.1:{port}/jobs?type=DeliverGroupEvent")
            assert fanouts[0] in page
        finally:
            pages.terminate()
            pages.wait(10)

        demo.send_signal(signal.SIGINT)  # Ctrl-C
        assert demo.wait(30) == 0, out.read_text()
        assert out.read_text().rstrip().endswith("stopping the embedded Postgres")
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(url, connect_timeout=2)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()


def _page(url: str) -> str:
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return str(response.read().decode())
        except OSError:
            assert time.monotonic() < deadline, url
            time.sleep(0.2)


def test_demo_uses_database_url_when_set(db_url, tmp_path):
    demo = _run(
        ["broseph", "demo", "--groups", "2"], env=env_with(DATABASE_URL=db_url), cwd=tmp_path
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "embedded" not in demo.stdout
    with psycopg.connect(db_url) as conn:
        (groups,) = conn.execute("SELECT count(*) FROM public.groups").fetchone()
        (open_jobs,) = conn.execute(
            "SELECT count(*) FROM broseph.job_records WHERE status <> 'completed'"
        ).fetchone()
    assert groups == 3 and open_jobs == 0  # two small groups and the large one
    # The hint names commands that read the same DATABASE_URL: nothing to export, no password.
    hint = demo.stdout.split("Look around (these commands read the same DATABASE_URL):\n")[1]
    assert "export" not in hint and "jobs list" in hint
    assert psycopg.conninfo.conninfo_to_dict(db_url).get("password", "\0") not in demo.stdout


def test_demo_refuses_a_group_count_out_of_range(tmp_path, no_database_env):
    for bad in ("0", "-3", "101", "many"):
        demo = _run(["broseph", "demo", "--groups", bad], env=no_database_env, cwd=tmp_path)
        assert demo.returncode == 2, bad
        [line] = demo.stderr.strip().splitlines()
        assert line.startswith("error: Invalid value for '--groups'"), line
        assert line.endswith("— see 'broseph demo --help'"), line
    assert not (tmp_path / ".broseph").exists()  # refused before starting anything


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
