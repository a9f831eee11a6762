"""
The settings tests run a worker with: no .env file, a short poll, heartbeat and shutdown.
"""

from __future__ import annotations

from typing import Any

from broseph.settings import Settings


def worker_settings(database_url: str, **overrides: Any) -> Settings:
    """
    The shared `settings` fixture's values for `database_url`, with `overrides` on top.
    """
    values: dict[str, Any] = {
        "database_url": database_url,
        "worker_concurrency": 4,
        "poll_interval": 0.5,
        "heartbeat_interval": 1.0,
        "shutdown_timeout": 5.0,
    }
    return Settings(_env_file=None, **(values | overrides))  # type: ignore[call-arg]
