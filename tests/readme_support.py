"""
README.md's code blocks, for the tests that run them as written.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"

_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[ \t]*$")


@dataclass(frozen=True)
class Block:
    line: int  # where the block's first code line is in README.md (1-based)
    code: str


def blocks(lang: str, text: str | None = None) -> list[Block]:
    """
    Every fenced block of one language, indented ones (inside list items) too, dedented.
    """
    lines = (README.read_text(encoding="utf-8") if text is None else text).splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening or not opening["lang"]:
            i += 1
            continue
        end = i + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if opening["lang"] == lang:
            found.append(Block(i + 2, textwrap.dedent("\n".join(lines[i + 1 : end]))))
        i = end + 1
    return found


@dataclass
class Statement:
    sql: str
    comments: list[str] = field(default_factory=list)
    # $n used in the SQL text (outside string literals and comments)
    parameters: set[int] = field(default_factory=set)

    def legend(self) -> dict[int, str]:
        """
        `-- $1 group_id, $2 local_date` in the statement's comments → {1: "group_id", …}.
        """
        text = " ".join(self.comments)
        return {int(n): name for n, name in re.findall(r"\$(\d+)\s+([a-z_]+)", text)}


def _split_line(line: str) -> tuple[str, str, str | None]:
    """
    (code, code with string literals blanked, comment) of one line; README SQL keeps string
    literals on one line.
    """
    quoted = False
    blank = []
    for i, char in enumerate(line):
        if char == "'":
            quoted = not quoted
            blank.append(char)
        elif not quoted and line.startswith("--", i):
            return line[:i], "".join(blank), line[i + 2 :].strip()
        else:
            blank.append(" " if quoted else char)
    return line, "".join(blank), None


def statements(block: str) -> list[Statement]:
    """
    The statements of one SQL block, split at a `;` that ends a line. Comment lines belong to
    the statement after them; a comment after the `;` on the same line, to the one it ends.
    """
    found: list[Statement] = []
    current = Statement("")
    for line in block.splitlines():
        code, blanked, comment = _split_line(line)
        if not code.strip():
            if comment is not None:
                current.comments.append(comment)
            continue
        current.sql += code.rstrip() + "\n"
        current.parameters |= {int(n) for n in re.findall(r"\$(\d+)", blanked)}
        if code.rstrip().endswith(";"):
            if comment is not None:
                current.comments.append(comment)
            current.sql = current.sql.strip().removesuffix(";")
            found.append(current)
            current = Statement("")
        elif comment is not None:
            current.comments.append(comment)
    if current.sql.strip():
        current.sql = current.sql.strip()
        found.append(current)
    return found


def table(after: str, text: str | None = None) -> list[dict[str, str]]:
    """
    The rows of the first Markdown table after the first line containing `after`, as
    {header: cell}; a cell that is one code span (`x`) is given without its backticks.
    """
    lines = (README.read_text(encoding="utf-8") if text is None else text).splitlines()
    start = next(i for i, line in enumerate(lines) if after in line)
    head = next(i for i in range(start, len(lines)) if lines[i].startswith("|"))
    header = _cells(lines[head])
    assert set(lines[head + 1].replace("|", "").split()) <= {"---"}, lines[head + 1]
    rows = []
    for line in lines[head + 2 :]:
        if not line.startswith("|"):
            break
        cells = _cells(line)
        assert len(cells) == len(header), line
        rows.append(dict(zip(header, cells, strict=True)))
    return rows


def _cells(line: str) -> list[str]:
    # README tables keep `|` out of their cells.
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    return [c[1:-1] if re.fullmatch(r"`[^`]*`", c) else c for c in cells]
