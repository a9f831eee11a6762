"""
Errors a person can act on: one line naming the cause and the fix.

A `Problem` is such an error. Commands end in `report()`, which prints any exception as
`error: <cause> — <fix>` on stderr (the traceback only with `broseph --debug`) and gives the exit
code: 2 when the configuration or the input must change, 1 otherwise. `explain()` knows the
ordinary mistakes — no or a malformed DATABASE_URL, an unknown host, database or role, a wrong
password, a database that is down or not migrated, invalid settings — and `connect_problem()`
also says whether a failed connection is worth retrying (the server is starting, refusing,
resetting) or not (nothing will change until someone fixes the URL or the server).

libpq reports connection failures as text only (no SQLSTATE), so they are recognised by their
English messages; an unrecognised one is treated as permanent and shown as it is, scrubbed.
"""

from __future__ import annotations

import re
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from broseph.logs import scrub

FIX_CONFIG: Final = 2  # exit code: the configuration or the input must change
FAILED: Final = 1  # exit code: anything else
URL_FORM: Final = "postgresql://USER:PASSWORD@HOST:5432/DBNAME"


class Problem(Exception):
    """
    An error with its cause and its fix, printed as one line. `transient` errors may go away by
    themselves (a database restarting); `origin` is the exception behind it, for `--debug`.
    """

    def __init__(
        self,
        cause: str,
        fix: str = "",
        *,
        exit_code: int = FAILED,
        transient: bool = False,
        origin: BaseException | None = None,
    ) -> None:
        self.cause = _one_line(cause)
        self.fix = _one_line(fix)
        self.exit_code = exit_code
        self.transient = transient
        self.origin = origin
        super().__init__(str(self))

    def __str__(self) -> str:
        # The cause may quote outside text (a server's message, a setting): scrub it. The fix is
        # ours, and may show the URL form with its PASSWORD placeholder.
        cause = scrub(self.cause)
        return f"{cause} — {self.fix}" if self.fix else cause

    def alone(self) -> Problem:
        """
        This problem without its exception chain, for callers that print a whole chain
        (procrastinate's CLI prints every cause and context); `origin` keeps it for --debug.
        """
        self.origin = self.origin or self.__cause__ or self.__context__
        self.__cause__ = self.__context__ = None
        self.__suppress_context__ = True
        return self


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def explain(exc: BaseException) -> Problem:
    """
    The one-line problem behind any exception (a generic one when it is not a known mistake).
    """
    import psycopg
    import pydantic

    from broseph import db, migrate

    for link in _chain(exc):
        if isinstance(link, Problem):
            return link
        if isinstance(link, db.DatabaseNotConfigured):
            return Problem(
                "DATABASE_URL is not set",
                f"set it to {URL_FORM} (see .env.example); only `broseph demo` runs without one",
                exit_code=FIX_CONFIG,
                origin=exc,
            )
        if isinstance(link, pydantic.ValidationError) and link.title == "Settings":
            return settings_problem(link)
        if isinstance(link, migrate.MigrationError):
            return Problem(str(link), "fix the database or the migration, then run it again")
        if isinstance(link, psycopg.Error):
            return database_problem(link)
    detail = _one_line(str(exc))
    detail = detail if len(detail) <= 300 else detail[:300] + "…"
    return Problem(
        f"unexpected {type(exc).__name__}" + (f": {detail}" if detail else ""),
        "run again with --debug for the traceback",
        origin=exc,
    )


def settings_problem(exc: object) -> Problem:
    """
    Invalid settings (pydantic's ValidationError of Settings), named as environment variables.
    """
    errors = exc.errors(include_input=False) if hasattr(exc, "errors") else []
    named = [
        f"{'.'.join(str(part) for part in err['loc']).upper()}: {err['msg']}" for err in errors[:3]
    ]
    return Problem(
        "invalid setting " + "; ".join(named),
        "fix it in the environment or in .env (.env.example documents every setting)",
        exit_code=FIX_CONFIG,
        origin=exc if isinstance(exc, BaseException) else None,
    )


def database_problem(exc: BaseException) -> Problem:
    """
    A psycopg error: a failed connection (see connect_problem), an unmigrated database, or a
    statement the database refused.
    """
    state = getattr(exc, "sqlstate", None)
    if state is None:
        return connect_problem(exc)
    diag = getattr(exc, "diag", None)
    primary = (diag.message_primary if diag is not None else None) or str(exc)
    if state in ("42P01", "42883", "3F000") and re.search(r"procrastinate|broseph", primary):
        return Problem(
            f"the database is not migrated ({primary})", "run `broseph migrate`", origin=exc
        )
    if state.startswith("08") or state in ("57P01", "57P02", "57P03"):
        return connect_problem(exc)
    return Problem(
        f"the database refused the request: {primary}",
        "run again with --debug for the details",
        origin=exc,
    )


@dataclass(frozen=True)
class _Rule:
    pattern: re.Pattern[str]
    cause: str  # format string: the pattern's named groups, and {where}
    fix: str
    transient: bool = False
    exit_code: int = FIX_CONFIG


def _rule(pattern: str, cause: str, fix: str, *, transient: bool = False) -> _Rule:
    return _Rule(
        re.compile(pattern, re.IGNORECASE), cause, fix, transient, FAILED if transient else 2
    )


_FIX_URL = "fix DATABASE_URL"
# First match wins: the permanent mistakes, then what a retry can cure.
_CONNECT_RULES: Final = (
    _rule(
        r'database "(?P<name>[^"]*)" does not exist',
        'database "{name}" does not exist',
        "create it or fix the database name in DATABASE_URL",
    ),
    _rule(
        r'role "(?P<name>[^"]*)" does not exist',
        'role "{name}" does not exist',
        "create it or fix the user name in DATABASE_URL",
    ),
    _rule(
        r'password authentication failed for user "(?P<name>[^"]*)"',
        'password authentication failed for user "{name}"',
        "fix the password in DATABASE_URL",
    ),
    _rule(
        r"no password supplied|password is required",
        "the database asks for a password and DATABASE_URL has none",
        f"add it: {URL_FORM}",
    ),
    _rule(
        r'no pg_hba\.conf entry for host "(?P<host>[^"]*)", user "(?P<user>[^"]*)", '
        r'database "(?P<db>[^"]*)"',
        'the server does not let user "{user}" reach database "{db}" from {host} (pg_hba.conf)',
        "allow it in pg_hba.conf, or fix DATABASE_URL (sslmode=require where SSL is required)",
    ),
    _rule(
        r"(?:failed to resolve host|could not translate host name) [\"'](?P<host>[^\"']*)[\"']",
        'cannot resolve the database host "{host}"',
        "fix the host name in DATABASE_URL",
    ),
    _rule(
        r'permission denied for database "(?P<db>[^"]*)"',
        'the user may not connect to database "{db}"',
        "GRANT CONNECT ON DATABASE to the user, or fix DATABASE_URL",
    ),
    _rule(
        r"server does not support SSL",
        "the server does not support SSL, but DATABASE_URL requires it",
        "drop sslmode=require from DATABASE_URL, or enable SSL on the server",
    ),
    _rule(
        r"connection refused",
        "cannot reach the database at {where} (connection refused)",
        "start it, or fix the host and port in DATABASE_URL",
        transient=True,
    ),
    _rule(
        r"timeout expired|timed out",
        "no answer from the database at {where} (timed out)",
        "check that it runs and is reachable from here, or fix DATABASE_URL",
        transient=True,
    ),
    _rule(
        r"the database system is (?P<state>starting up|shutting down|in recovery mode|not yet "
        r"accepting connections|not accepting connections)",
        "the database at {where} is {state}",
        "wait for it to finish",
        transient=True,
    ),
    _rule(
        r"too many clients|remaining connection slots are reserved",
        "the database at {where} has no free connection",
        "wait, lower DB_POOL_MAX_SIZE or WORKER_CONCURRENCY, or raise max_connections",
        transient=True,
    ),
    _rule(
        r"(?P<what>server closed the connection unexpectedly|connection reset|terminating "
        r"connection|could not receive data|could not send data|no route to host|network is "
        r"unreachable|broken pipe|SSL SYSCALL error|EOF detected|consuming input failed)",
        "lost the connection to the database at {where} ({what})",
        "check the server and the network",
        transient=True,
    ),
)
# libpq's complaints about the connection string itself.
_MALFORMED: Final = re.compile(
    r"invalid (?:connection option|URI|dsn|integer value|\w+ value|percent-encoded)|missing \"=\""
    r"|end of string reached|unterminated quoted string|invalid IPv6|unexpected spaces",
    re.IGNORECASE,
)
_WHERE: Final = re.compile(
    r'connection to server (?:at "(?P<host>[^"]*)"(?: \([^)]*\))?, port (?P<port>\d+)'
    r'|on socket "(?P<socket>[^"]*)")'
)


def connect_problem(exc: BaseException) -> Problem:
    """
    What a failed connection attempt means, and whether trying again can help.
    """
    message = str(exc)
    if _MALFORMED.search(message):
        return Problem(
            f"DATABASE_URL is not a valid PostgreSQL URL ({_conninfo_reason(message)})",
            f"expected {URL_FORM}",
            exit_code=FIX_CONFIG,
            origin=exc,
        )
    found = _WHERE.search(message)
    where = "the configured host"
    if found and found["socket"]:
        where = found["socket"]
    elif found:
        where = f"{found['host']}:{found['port']}"
    for rule in _CONNECT_RULES:
        match = rule.pattern.search(message)
        if match:
            cause = rule.cause.format(where=where, **match.groupdict())
            return Problem(
                cause, rule.fix, exit_code=rule.exit_code, transient=rule.transient, origin=exc
            )
    detail = message.strip().splitlines()[-1] if message.strip() else type(exc).__name__
    return Problem(f"cannot connect to the database at {where}: {detail}", _FIX_URL, origin=exc)


@lru_cache(maxsize=1)
def _conninfo_keywords() -> frozenset[str]:
    from psycopg import pq

    return frozenset(option.keyword.decode() for option in pq.Conninfo.get_defaults())


def _conninfo_reason(message: str) -> str:
    """
    libpq's complaint without the pieces of the URL it quotes (they may be the password);
    connection option names are kept.
    """
    first = message.strip().splitlines()[0] if message.strip() else "unparsable"
    first = re.sub(r"^(?:connection is bad|invalid dsn|connection failed):\s*", "", first)

    def keep_keyword(match: re.Match[str]) -> str:
        return match[0] if match[1] in _conninfo_keywords() else '"…"'

    return re.sub(r'"([^"]*)"', keep_keyword, first)


def report(exc: BaseException, *, debug: bool = False) -> int:
    """
    Print an exception as `error: <cause> — <fix>` on stderr, after its traceback with --debug
    (scrubbed, without local variables); return the exit code.
    """
    problem = explain(exc)
    if debug:
        shown = problem.origin or exc
        text = "".join(traceback.format_exception(shown))
        sys.stderr.write(scrub(text))
    sys.stderr.write(f"error: {problem}\n")
    sys.stderr.flush()
    return problem.exit_code
