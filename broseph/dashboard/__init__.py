"""
The operator dashboard (`pip install 'broseph[dashboard]'`): see, search, retry and cancel jobs
in a browser. `broseph dashboard` serves it; `create_app()` is the same ASGI application, to run
under any ASGI server or mount inside another application.
"""

from __future__ import annotations

from broseph.dashboard.app import create_app

__all__ = ["create_app"]
