"""
The install commands stay in step: the README's two commands, .ci/run's installs, pyproject's
extras.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXTRAS_RE = re.compile(r"-e '\.\[([a-z0-9_,-]+)\]'")


def _extras(line: str) -> set[str]:
    match = EXTRAS_RE.search(line)
    assert match, line
    return set(match.group(1).split(","))


def _readme_command(marker: str) -> str:
    """
    The one-line command in the first bash block after the paragraph starting with `marker`.
    """
    readme = (ROOT / "README.md").read_text()
    after = readme[readme.index(marker) :]
    block = after[after.index("```bash\n") + len("```bash\n") :]
    return block[: block.index("\n```")].strip()


def test_demo_command_installs_the_demo_extra():
    command = _readme_command("Run the demo")
    assert "demo" in _extras(command) and command.endswith("broseph demo")


def test_ci_installs_what_the_readme_test_command_installs():
    readme = _extras(_readme_command("Run the tests"))
    ci = (ROOT / ".ci" / "run").read_text()
    installs = [_extras(line) for line in ci.splitlines() if EXTRAS_RE.search(line)]
    # The main install and the lowest-versions install.
    assert len(installs) == 2 and all(extras == readme for extras in installs), (readme, installs)
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert readme <= set(declared["optional-dependencies"])
