"""
Shared pieces of the secrets and error-message tests (test_secrets.py, test_errors.py,
test_worker_start.py): a throwaway cluster that asks for passwords, the commands exactly as an
operator types them, and worker subprocesses whose whole output is kept for grepping.

The shared test server trusts every connection, so a password there is never checked; this
cluster trusts only `postgres` (the tests' admin) and asks every other role for its password
(scram-sha-256), like a real deployment.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests import pg, pgcluster

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
APP_ROLE = "broseph_app"
HBA = (
    "local all all trust\n"
    "host all postgres 127.0.0.1/32 trust\n"
    "host all all 127.0.0.1/32 scram-sha-256\n"
)


@dataclass(frozen=True)
class PasswordCluster:
    server: pgcluster.PgCluster
    password: str

    def app_url(self, dbname: str, *, password: str | None = None) -> str:
        """
        The URL a deployment would use: the application role, with its password.
        """
        return make_conninfo(
            host="127.0.0.1",
            port=str(self.server.port),
            user=APP_ROLE,
            password=self.password if password is None else password,
            dbname=dbname,
        )

    def as_uri(self, dbname: str, *, password: str | None = None) -> str:
        secret = self.password if password is None else password
        return f"postgresql://{APP_ROLE}:{secret}@127.0.0.1:{self.server.port}/{dbname}"

    async def migrated_database(self) -> str:
        """
        A fresh migrated database; returns its name.
        """
        url = await self.server.create_database()
        return str(conninfo_to_dict(url)["dbname"])

    def empty_database(self) -> str:
        return pg.create_database(self.server.admin_url, prefix="bsecempty")


@contextlib.contextmanager
def password_cluster() -> Iterator[PasswordCluster]:
    root = Path(tempfile.mkdtemp(prefix="broseph-pwcluster-"))
    server = pgcluster.PgCluster(root, pgcluster.free_port())
    # Letters, digits and dashes: the same text in a URL, in libpq's view and in a grep.
    password = f"S3cret-{uuid.uuid4().hex}"
    try:
        server.init()
        (server.data / "pg_hba.conf").write_text(HBA)
        server.start()
        with psycopg.connect(server.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {APP_ROLE} LOGIN SUPERUSER PASSWORD '{password}'")
        yield PasswordCluster(server, password)
    finally:
        server.destroy()


def env(**values: str | None) -> dict[str, str]:
    """
    The test process's environment, minus every broseph setting that could leak in, plus
    `values` (None removes a variable).
    """
    base = {k: v for k, v in os.environ.items() if k not in _SETTINGS_TO_CLEAR}
    base.setdefault("COLUMNS", "200")
    for key, value in values.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return base


_SETTINGS_TO_CLEAR = frozenset(
    {
        "DATABASE_URL",
        "OPENAI_API_KEY",
        "FIREBASE_CREDENTIALS_FILE",
        "LOG_FORMAT",
        "LOG_LEVEL",
        "SENTRY_DSN",
        "SENTRY_ENVIRONMENT",
        "SENTRY_RELEASE",
    }
)


def command(*words: str) -> list[str]:
    """
    A console script of this venv with its arguments, as an operator with it activated types.
    """
    return [str(BIN / words[0]), *words[1:]]


def run(words: list[str], environment: dict[str, str], *, timeout: float = 60):
    """
    Run a command to its end (cwd: a scratch directory, so no .env file is read).
    """
    with tempfile.TemporaryDirectory(prefix="broseph-cmd-") as cwd:
        return subprocess.run(
            words,
            env=environment,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def error_lines(stderr: str) -> list[str]:
    """
    What a failed command said on stderr, minus procrastinate's own "Launching a worker" line.
    """
    return [
        line
        for line in stderr.splitlines()
        if line.strip() and not line.startswith("Launching a worker on")
    ]


class Process:
    """
    A long-running command (a worker) with its whole output (stdout and stderr) in one file.
    """

    def __init__(self, words: list[str], environment: dict[str, str]) -> None:
        self.log_path = Path(tempfile.mkstemp(prefix="broseph-sec-", suffix=".log")[1])
        self.cwd = tempfile.mkdtemp(prefix="broseph-cwd-")
        environment = {**environment, "PYTHONPATH": str(ROOT)}
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                words, env=environment, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT
            )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait_for(self, text: str, *, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        while text not in self.output():
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"never logged {text!r}:\n{self.output()[-3000:]}")
            await asyncio.sleep(0.1)

    def terminate(self, *, within: float = 30.0) -> int | None:
        """
        SIGTERM, then the exit code, or None when it did not exit within `within` seconds.
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(within)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.log_path.unlink(missing_ok=True)
        shutil.rmtree(self.cwd, ignore_errors=True)
