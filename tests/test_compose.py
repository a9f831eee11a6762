"""
docker-compose.yml cannot run here (no Docker engine): check its structure instead.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import yaml

from broseph.ops import probes
from broseph.settings import Settings
from tests.pgcluster import free_port

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {name.upper() for name in Settings.model_fields}
BROSEPH_SERVICES = ("migrate", "worker", "ingress", "dashboard")
# The dashboard's credentials (DASHBOARD_USER / DASHBOARD_PASSWORD in settings.py).
DASHBOARD_CREDENTIALS = {"DASHBOARD_USER", "DASHBOARD_PASSWORD"}


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_every_broseph_process_runs_the_one_image_built_once():
    services = _compose()["services"]
    assert set(BROSEPH_SERVICES) <= set(services)
    builders = [name for name, svc in services.items() if "build" in svc]
    assert builders == ["migrate"], builders
    assert services["migrate"]["build"] == "."
    image = services["migrate"]["image"]
    for name in BROSEPH_SERVICES:
        svc = services[name]
        assert svc["image"] == image, name
        # Never pulled: a registry image of that name is not what this Dockerfile builds.
        assert svc["pull_policy"] == ("build" if name == "migrate" else "never"), name
        # The image's ENTRYPOINT is `broseph`: commands are its arguments, exec form.
        assert isinstance(svc["command"], list) and svc["command"][0] != "broseph", name
    assert services["migrate"]["command"] == ["migrate"]
    assert services["worker"]["command"] == ["worker"]
    assert services["ingress"]["command"] == ["ingress", "bullmq"]
    assert services["dashboard"]["command"] == ["dashboard", "--host", "0.0.0.0"]


def test_start_order_and_healthchecks():
    services = _compose()["services"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"]["restart"] == "no"
    for name in ("worker", "ingress", "dashboard"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert services[name]["restart"] == "unless-stopped", name
    assert services["ingress"]["depends_on"]["redis"]["condition"] == "service_healthy"
    # Liveness from /livez of the process's probe port; never the database (README, "Probes").
    for name in ("worker", "ingress", "dashboard"):
        check = services[name]["healthcheck"]
        command = " ".join(check["test"])
        port = services[name]["environment"]["METRICS_PORT"]
        assert f"http://127.0.0.1:{port}/livez" in command, name
        assert "health" not in check["test"] and "DATABASE" not in command.upper(), name
        assert _seconds(check["timeout"]) < _seconds(check["interval"]), name
    assert services["migrate"]["healthcheck"] == {"disable": True}
    # Longer than the worker's default SHUTDOWN_TIMEOUT (30 s), so running jobs finish first.
    shutdown = Settings.model_fields["shutdown_timeout"].default
    for name in ("worker", "ingress"):
        assert int(services[name]["stop_grace_period"].rstrip("s")) > shutdown, name


def test_redis_never_evicts_bullmq_jobs():
    command = _compose()["services"]["redis"]["command"]
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"


def test_environment_names_are_settings_and_secrets_come_from_outside():
    services = _compose()["services"]
    for name in BROSEPH_SERVICES:
        env = services[name]["environment"]
        unknown = set(env) - SETTINGS
        if name == "dashboard":
            unknown -= DASHBOARD_CREDENTIALS
        assert not unknown, (name, unknown)
        assert services[name]["env_file"] == [{"path": ".env", "required": False}], name
    # Credentials are never written into the file: they come from the shell or .env.
    dashboard_env = services["dashboard"]["environment"]
    for key in DASHBOARD_CREDENTIALS:
        assert re.fullmatch(rf"\$\{{{key}(:-)?\}}", dashboard_env[key]), dashboard_env[key]
    # Every process's database is the compose Postgres, with the user/password/db it creates.
    pg_env = services["postgres"]["environment"]
    expected = (
        f"postgresql://{pg_env['POSTGRES_USER']}:{pg_env['POSTGRES_PASSWORD']}"
        f"@postgres:5432/{pg_env['POSTGRES_DB']}"
    )
    for name in BROSEPH_SERVICES:
        assert services[name]["environment"]["DATABASE_URL"] == expected, name
    assert services["ingress"]["environment"]["REDIS_URL"] == "redis://redis:6379"


def _seconds(text: str) -> int:
    return int(text.rstrip("s"))


async def test_the_livez_healthcheck_passes_on_a_live_process_and_fails_without_one():
    """
    The compose healthcheck's own command, run as the container runs it, against a probe
    endpoint (its port swapped for a free one), then against a port where nothing listens.
    """
    check = _compose()["services"]["worker"]["healthcheck"]["test"]
    assert check[0] == "CMD"
    command = [sys.executable if word == "python3" else word for word in check[1:]]
    async with probes.serving({}, port=0, addr="127.0.0.1") as port:
        live = await asyncio.to_thread(_run, [w.replace("9464", str(port)) for w in command])
    assert live.returncode == 0, live.stderr
    dead = await asyncio.to_thread(_run, [w.replace("9464", str(free_port())) for w in command])
    assert dead.returncode != 0 and "Connection refused" in dead.stderr


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
