"""
The scrubber (broseph/logs.py): what it removes, what it keeps, and the shape that keeps it linear.

Its speed is measured by `python -m bench.scrub` (old vs new, 30 k to 1 MB), and
tests/test_secrets.py shows a worker logging a megabyte value still stops on SIGTERM.
"""

from __future__ import annotations

import re
import re._constants as sre_constants
import re._parser as sre_parse
from typing import Any

import pytest

from broseph import logs

R = logs.REDACTED

TABLE = [
    # URL passwords: scheme, user and host stay.
    ("postgresql://app:s3cr3t@db.example:5432/x", f"postgresql://app:{R}@db.example:5432/x"),
    ("postgres://u:p%40ss@h/db?sslmode=require", f"postgres://u:{R}@h/db?sslmode=require"),
    ("redis://:hunter2@cache:6379/0", f"redis://:{R}@cache:6379/0"),  # no user
    ("rediss://default:pw@h:6380", f"rediss://default:{R}@h:6380"),
    ("postgresql://u:p@ss@h/db", f"postgresql://u:{R}@h/db"),  # an unencoded '@' in it
    ('failed: "postgresql://u:pw@[bad/db"', f'failed: "postgresql://u:{R}@[bad/db"'),
    # Not passwords: ports, paths, e-mail addresses.
    ("http://host:8080/a/b", "http://host:8080/a/b"),
    ("https://api.openai.com/v1/chat", "https://api.openai.com/v1/chat"),
    ("write to ana@example.com", "write to ana@example.com"),
    ("postgresql://app@db/x", "postgresql://app@db/x"),
    # key=value text: libpq conninfo, environment dumps, JSON and reprs.
    ("host=db password=s3cr3t dbname=x", f"host=db password={R} dbname=x"),
    ("host=db password='two words' dbname=x", f"host=db password={R} dbname=x"),
    ("PGPASSWORD=s3cr3t psql", f"PGPASSWORD={R} psql"),
    ('{"password": "s3cr3t", "n": 1}', f'{{"password": {R}, "n": 1}}'),
    ("{'api_key': 'abc123'}", f"{{'api_key': {R}}}"),
    ("refresh_token=1//0gabc&x=1", f"refresh_token={R}&x=1"),
    ('password authentication failed for "app"', 'password authentication failed for "app"'),
    # API keys, bearer tokens, Google access tokens, private keys.
    ("key sk-proj-abcdefghijkl rejected", f"key {R} rejected"),
    ("sk-short", "sk-short"),
    ("Authorization: Bearer abc.def-ghi", f"Authorization: {R}"),
    ("token ya29.a0AfH6SMB-xyz_123 expired", f"token {R} expired"),
    (
        '"private_key": "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADA\\n-----END PRIVATE KEY-----"',
        f'"private_key": {R}',
    ),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", R),
    # Nothing to remove.
    ("job_complete duration_ms=12.5", "job_complete duration_ms=12.5"),
    ("", ""),
]


@pytest.mark.parametrize(("text", "expected"), TABLE)
def test_scrub_table(text: str, expected: str) -> None:
    assert logs.scrub(text) == expected
    assert logs.scrub(expected) == expected  # scrubbing twice changes nothing more


def _starts_with_literal(items: Any) -> bool:
    first = list(items)[:1]
    if not first:
        return False
    op, arg = first[0]
    if op is sre_constants.LITERAL:
        return True
    if op is sre_constants.SUBPATTERN:
        return _starts_with_literal(arg[-1])
    if op is sre_constants.BRANCH:
        return all(_starts_with_literal(alternative) for alternative in arg[1])
    return False


def _unbounded_repeats(items: Any) -> list[Any]:
    found = []
    for op, arg in items:
        if op in (
            sre_constants.MAX_REPEAT,
            sre_constants.MIN_REPEAT,
            sre_constants.POSSESSIVE_REPEAT,
        ):
            _low, high, body = arg
            if high is sre_constants.MAXREPEAT:
                found.append(body)
            found += _unbounded_repeats(body)
        elif op is sre_constants.SUBPATTERN:
            found += _unbounded_repeats(arg[-1])
        elif op is sre_constants.BRANCH:
            for alternative in arg[1]:
                found += _unbounded_repeats(alternative)
    return found


def test_each_pattern_has_the_shape_that_keeps_scrubbing_linear() -> None:
    """
    What made the old URL pattern quadratic was its start: `\\w+://…` may begin at any word
    character and then scans the whole word run, so a 30,000-character run costs 30,000 scans
    of up to 30,000 characters. Each pattern here begins with a literal, so it is tried only
    where that literal occurs, and every unbounded repeat is over one character class (no
    nested repeats, which backtrack exponentially).
    """
    for pattern, _ in logs.SECRET_PATTERNS:
        parsed = sre_parse.parse(pattern.pattern, pattern.flags)
        assert _starts_with_literal(parsed), f"{pattern.pattern} must start with a literal"
        for body in _unbounded_repeats(parsed):
            assert len(body) == 1 and body[0][0] in (
                sre_constants.IN,
                sre_constants.NOT_LITERAL,
                sre_constants.LITERAL,
                sre_constants.CATEGORY,
            ), f"{pattern.pattern}: an unbounded repeat over more than a character class"


def test_the_old_url_pattern_fails_that_check() -> None:
    old = re.compile(r"(\w+://[^:@/\s]+:)[^@/\s]+@")
    assert not _starts_with_literal(sre_parse.parse(old.pattern, old.flags))


def test_sensitive_keys_are_redacted_whole_and_by_ending() -> None:
    event = logs.redact_secrets(
        None,
        "info",
        {
            "event": "x",
            "device_token": "t",
            "DB_PASSWORD": "p",
            "client_secret": "s",
            "refresh_token": "r",
            "nested": {"private_key": "k", "count": 2, "list": ["Bearer abc", 1]},
            "idempotency_key": "prompt:1",
            "_record": object,
        },
    )
    assert event["device_token"] == event["DB_PASSWORD"] == event["client_secret"] == R
    assert event["refresh_token"] == R
    assert event["nested"] == {"private_key": R, "count": 2, "list": [R, 1]}
    assert event["idempotency_key"] == "prompt:1" and event["_record"] is object
