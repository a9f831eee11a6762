"""
The enqueue API loads no outside service's SDK: producers import `broseph.enqueue` and the payload
models (README, "From Python"), and neither may pull in openai, firebase-admin, google-auth or
aiohttp (FCM's transport). Only the composition root (`broseph.services`) imports the SDK adapters
(`providers.ai_openai`, `providers.push_fcm`), and only when a setting asks for them.

Each check runs in a fresh interpreter: this test process has imported the SDKs long ago.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SDKS = ("openai", "firebase_admin", "google.auth", "aiohttp")


def loaded_after(*modules: str) -> list[str]:
    """
    The SDK modules present in `sys.modules` after a fresh interpreter imports `modules`.
    """
    code = (
        "import importlib, json, sys\n"
        f"for name in {list(modules)!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps([m for m in {list(SDKS)!r} if m in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    found: list[str] = json.loads(done.stdout)
    return found


@pytest.mark.parametrize(
    "modules",
    [
        ("broseph.enqueue",),
        # What a producer writes (README): the enqueue API and a payload model.
        ("broseph.enqueue", "broseph.jobs.process_engagement"),
        # The whole catalogue, the ports and the composition root itself.
        ("broseph.jobs", "broseph.providers.ai", "broseph.providers.push", "broseph.services"),
    ],
)
def test_the_enqueue_api_and_the_job_types_load_no_sdk(modules: tuple[str, ...]) -> None:
    assert loaded_after(*modules) == []


@pytest.mark.parametrize(
    ("adapter", "sdk"),
    [
        ("broseph.providers.ai_openai", "openai"),
        ("broseph.providers.push_fcm", "firebase_admin"),
        ("broseph.providers.push_fcm", "aiohttp"),
    ],
)
def test_the_adapters_are_where_the_sdks_come_in(adapter: str, sdk: str) -> None:
    # The probe above can see an SDK: importing an adapter loads its SDK.
    assert sdk in loaded_after(adapter)


def test_enqueue_does_not_import_the_job_catalogue() -> None:
    # The job modules import `enqueue` to enqueue follow-ups; `enqueue` must not import them back.
    code = "import sys, broseph.enqueue; print('broseph.jobs' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "False"
