"""
Every setting is documented in .env.example, and .env.example names nothing that does not exist.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pydantic
import pytest

from broseph.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def documented(*, otel: bool = False) -> dict[str, str]:
    """
    The variables .env.example documents: broseph's settings, or (otel=True) OpenTelemetry's.
    """
    found: dict[str, str] = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match and match.group(1).startswith("OTEL_") == otel:
            found[match.group(1)] = match.group(2)
    return found


def test_every_setting_is_in_env_example_and_nothing_else():
    fields = {name.upper() for name in Settings.model_fields}
    assert set(documented()) == fields


def test_every_otel_variable_in_env_example_is_one_opentelemetry_reads():
    # OTEL_* are OpenTelemetry's, not Settings: each documented one must be a variable its SDK
    # reads (the names its own modules define), and the two broseph decides on must be read by
    # broseph/tracing.py.
    from opentelemetry import environment_variables as api_variables
    from opentelemetry.sdk import environment_variables as sdk_variables

    known = {
        value
        for module in (api_variables, sdk_variables)
        for name, value in vars(module).items()
        if name.startswith("OTEL_") and isinstance(value, str)
    }
    otel = documented(otel=True)
    assert otel and set(otel) <= known, set(otel) - known
    tracing_py = (ROOT / "broseph" / "tracing.py").read_text()
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED"):
        assert name in otel and f'"{name}"' in tracing_py, name


def test_every_documented_setting_has_a_comment():
    lines = (ROOT / ".env.example").read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^[A-Z][A-Z0-9_]*=", line):
            assert lines[i - 1].startswith("#"), f"{line} has no comment above it"


def test_env_example_values_parse(monkeypatch):
    for name, value in documented().items():
        monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.ingress_queues == ["broseph-jobs"]
    assert settings.worker_queues == []
    assert settings.metrics_port is None
    assert settings.listen_notify is True


def test_one_probe_port_scheme_for_every_process(monkeypatch):
    """
    METRICS_PORT / METRICS_ADDR are the probe and metrics endpoint of the worker, the ingress and
    the dashboard alike, and .env.example says so; a port out of range is refused at start.
    """
    text = (ROOT / ".env.example").read_text()
    block = text[: text.index("\nMETRICS_PORT=")].rsplit("\n\n", 1)[-1]
    block = block[block.index("# Port of the probe") :]
    for word in ("worker", "ingress", "dashboard", "/livez", "/readyz", "/metrics", "database"):
        assert word in block, word
    for bad in ("-1", "65536", "http"):
        monkeypatch.setenv("METRICS_PORT", bad)
        with pytest.raises(pydantic.ValidationError, match="metrics_port"):
            Settings(_env_file=None)  # type: ignore[call-arg]
    monkeypatch.setenv("METRICS_PORT", "0")
    assert Settings(_env_file=None).metrics_port == 0  # type: ignore[call-arg]


def attributes_read(package: Path) -> set[str]:
    """
    Every attribute name read (`x.name`, `getattr(x, "name")`) in the package, settings.py aside.
    """
    names: set[str] = set()
    for path in package.rglob("*.py"):
        if path.name == "settings.py" and path.parent == package:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
                names.add(node.attr)
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "getattr"
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
            ):
                names.add(str(node.args[1].value))
    return names


def test_every_setting_is_read_by_the_code():
    # A documented setting nothing reads (RETRY_BASE_SECONDS was one) misleads whoever sets it.
    unread = set(Settings.model_fields) - attributes_read(ROOT / "broseph")
    assert not unread, f"settings nothing in broseph/ reads: {sorted(unread)}"
