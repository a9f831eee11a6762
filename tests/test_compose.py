"""
docker-compose.yml cannot run here (no Docker engine): check its structure instead.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from broseph.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {name.upper() for name in Settings.model_fields}


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_and_healthchecks():
    services = _compose()["services"]
    assert {"postgres", "migrate", "worker"} <= set(services)
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["worker"]["healthcheck"]["test"][-2:] == ["broseph", "health"]
    assert services["worker"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert (
        services["worker"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    )
    assert "broseph migrate" in services["migrate"]["command"]
    assert "broseph worker" in services["worker"]["command"]


def test_environment_names_are_settings():
    services = _compose()["services"]
    for name in ("migrate", "worker"):
        env = services[name]["environment"]
        assert set(env) <= SETTINGS, set(env) - SETTINGS
    # The worker's database is the compose Postgres, with the user/password/db it creates.
    pg_env = services["postgres"]["environment"]
    url = services["worker"]["environment"]["DATABASE_URL"]
    assert url == (
        f"postgresql://{pg_env['POSTGRES_USER']}:{pg_env['POSTGRES_PASSWORD']}"
        f"@postgres:5432/{pg_env['POSTGRES_DB']}"
    )
