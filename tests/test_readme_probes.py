"""
README.md's "Probes" examples, run as written against real processes: the curl lines, the
Kubernetes Deployment's probes (its container's args and env, with a free port for 9464 and the
test database for the secret), and the systemd unit (`systemd-analyze verify`, then its
ExecStart under a fake NOTIFY_SOCKET with the unit's watchdog scaled down to seconds).
"""

from __future__ import annotations

import asyncio
import configparser
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from broseph.ops import probes, systemd
from broseph.settings import Settings
from tests import readme_support
from tests.conftest import venv_bin
from tests.pgcluster import free_port
from tests.probe_support import aget, notify_socket, until_answer
from tests.processes import each_closed
from tests.processes import stop as stop_process

README_PORT = "9464"


def _block(lang: str, marker: str) -> str:
    found = [b.code for b in readme_support.blocks(lang) if marker in b.code]
    assert len(found) == 1, f"one ```{lang} block with {marker!r} in README.md"
    return found[0]


class Process:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                args, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
            )

    def stop(self) -> int:
        return stop_process(self.proc, within=30)


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    yield from each_closed(Process.stop)


def _start(processes: list[Process], args: list[str], env: dict[str, str], log: Path) -> Process:
    process = Process(args, env, log)
    processes.append(process)
    return process


async def test_the_curl_lines_run_as_written(db_url, tmp_path, processes):
    port = str(free_port())
    _start(
        processes,
        [str(venv_bin("broseph")), "worker"],
        {"DATABASE_URL": db_url, "METRICS_PORT": port},
        tmp_path / "worker.log",
    )
    await until_answer(int(port), "/readyz", 200)
    lines = [line for line in _block("bash", "/livez").splitlines() if line.strip()]
    outputs = []
    for line in lines:
        command = line.split("  #")[0].replace(README_PORT, port)
        done = await asyncio.to_thread(
            subprocess.run, ["bash", "-c", command], capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, (command, done.stderr)
        outputs.append(done.stdout)
    livez, readyz, metrics = outputs
    assert livez == "ok\n"
    assert readyz == "ready\ndatabase: ok\nmigrations: ok\nlisten: ok\n"
    assert "# TYPE broseph_jobs_total counter" in metrics


async def test_the_kubernetes_probes_answer_as_configured(db_url, tmp_path, processes):
    deployment = yaml.safe_load(_block("yaml", "livenessProbe"))
    assert deployment["kind"] == "Deployment"
    pod = deployment["spec"]["template"]["spec"]
    shutdown = Settings.model_fields["shutdown_timeout"].default
    assert pod["terminationGracePeriodSeconds"] > shutdown
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    live, ready = container["livenessProbe"], container["readinessProbe"]
    assert live["httpGet"]["path"] == "/livez" and ready["httpGet"]["path"] == "/readyz"
    for probe in (live, ready):
        assert str(ports[probe["httpGet"]["port"]]) == env["METRICS_PORT"]
    # Each probe's timeout covers what the endpoint may take.
    assert live["timeoutSeconds"] > probes.LOOP_TIMEOUT
    assert ready["timeoutSeconds"] > probes.LOOP_TIMEOUT + probes.READY_TIMEOUT

    port = free_port()
    env = {**env, "METRICS_PORT": str(port), "DATABASE_URL": db_url}  # the secret's value
    _start(processes, [str(venv_bin("broseph")), *container["args"]], env, tmp_path / "w.log")
    await until_answer(port, "/readyz", 200)
    for probe in (live, ready):
        answer = await aget(port, probe["httpGet"]["path"], wait=probe["timeoutSeconds"])
        assert answer.status == 200, answer


def _unit() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes=("#",))
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(_block("ini", "WatchdogSec"))
    return unit


def test_the_systemd_unit_verifies(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    text = _block("ini", "WatchdogSec")
    executable = shlex.split(_unit()["Service"]["ExecStart"])[0]
    path = tmp_path / "broseph-worker.service"
    path.write_text(text.replace(executable, str(venv_bin("broseph"))))
    done = subprocess.run(
        [analyze, "verify", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


async def test_the_systemd_unit_s_worker_notifies_and_pings_its_watchdog(
    db_url, tmp_path, processes
):
    service = _unit()["Service"]
    assert service["Type"] == "notify"
    watchdog_sec = int(service["WatchdogSec"])
    command = shlex.split(service["ExecStart"])
    assert command[1:] == ["worker"]
    env = dict(part.split("=", 1) for part in shlex.split(service["Environment"]))
    assert env["METRICS_PORT"] == README_PORT
    # What systemd gives the process: its notify socket and the watchdog period, scaled from
    # the unit's WatchdogSec so that pings come every half second here.
    scaled_usec = 1_000_000
    assert systemd.watchdog_period({"WATCHDOG_USEC": str(watchdog_sec * 1_000_000)}) == (
        watchdog_sec / 2
    )
    port = free_port()
    with notify_socket(tmp_path) as sock:
        worker = _start(
            processes,
            [str(venv_bin("broseph")), *command[1:]],
            {
                **env,
                "METRICS_PORT": str(port),
                "DATABASE_URL": db_url,  # from the unit's EnvironmentFile
                "NOTIFY_SOCKET": str(sock.path),
                "WATCHDOG_USEC": str(scaled_usec),
            },
            tmp_path / "worker.log",
        )
        deadline = time.monotonic() + 60
        while "READY=1" not in sock.read(0.2):
            assert worker.proc.poll() is None, worker.log.read_text()[-3000:]
            assert time.monotonic() < deadline, sock.received
        pings = sock.received.count("WATCHDOG=1")
        await asyncio.sleep(1.6)
        assert sock.read(0.1).count("WATCHDOG=1") >= pings + 2
        assert (await aget(port, "/livez")).status == 200
        assert worker.stop() == 0  # SIGTERM, systemd's KillSignal
        assert sock.read(1)[-1] == "STOPPING=1"
    assert (
        '"event": "probes_serving"' in worker.log.read_text()
    )  # LOG_FORMAT=json, as the unit says
