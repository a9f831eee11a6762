"""
The README's Architecture section matches the tree: every module it names under broseph/ exists,
and every module and package of broseph/ is in its map.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "broseph"
# A file name (`lifecycle.py`, `providers/ai.py`) or a package (`jobs/`) as the map writes them.
_NAMED = re.compile(r"(?<![\w./<*-])((?:[a-z_]+/)*[a-z_]+\.py|[a-z_]+/)(?![\w*<])")
# An entry of the map: two spaces, then its name (continuation lines are indented further).
_ENTRY = re.compile(r"^  (\S+)")


def _section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("\n## Architecture\n")
    end = readme.index("\n## ", start + 1)
    return readme[start:end]


def _blocks() -> list[str]:
    return re.findall(r"```text\n(.*?)```", _section(), re.S)


def _module_map() -> list[tuple[str, str]]:
    """
    (entry, name) for every module or package the broseph/ map names, by the entry it is under.
    """
    lines = next(b for b in _blocks() if b.startswith("broseph/\n")).splitlines()[1:]
    named: list[tuple[str, str]] = []
    entry = ""
    for line in lines:
        if not line.startswith(" "):
            break  # migrations/, tests/, …: past broseph/
        found = _ENTRY.match(line)
        if found:
            entry = found.group(1).rstrip(",")
        # Text after an em dash or a colon may name outside things (`(openai)`); names only.
        named += [(entry, name) for name in _NAMED.findall(line)]
    return named


def _path(entry: str, name: str) -> Path:
    if name.startswith("broseph/"):
        return ROOT / name
    # A bare name under a package's entry (`ai.py` on the providers/ line) is in it.
    if "/" not in name.rstrip("/") and entry.endswith("/") and name != entry:
        return PACKAGE / entry / name
    return PACKAGE / name


def test_every_module_the_map_names_exists():
    named = _module_map()
    assert named, "no broseph/ module map in the README's Architecture section"
    missing = sorted({f"{e}: {n}" for e, n in named if not _path(e, n).exists()})
    assert not missing, f"the README's module map names what is not in broseph/: {missing}"


def test_every_module_of_the_package_is_in_the_map():
    listed = {_path(e, n).resolve() for e, n in _module_map()}
    own = [p for p in sorted(PACKAGE.glob("*.py")) if p.name != "__init__.py"]
    own += [p for p in sorted(PACKAGE.iterdir()) if (p / "__init__.py").exists()]
    absent = [p.relative_to(PACKAGE).as_posix() for p in own if p.resolve() not in listed]
    assert not absent, f"broseph/ holds what the README's module map leaves out: {absent}"


def test_the_path_of_a_job_names_modules_that_exist():
    path_of_a_job = _blocks()[0]
    named = {n for n in _NAMED.findall(path_of_a_job)} - {"migrations/"}
    missing = sorted(n for n in named if not (PACKAGE / n).exists())
    assert not missing, f"the path of a job names what is not in broseph/: {missing}"
