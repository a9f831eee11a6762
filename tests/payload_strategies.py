"""
Hypothesis strategies for job payloads: valid ones generated from each job type's model (through
its SQL field spec, which `broseph.jobs.base.field_spec` derives from the model), and hostile
mutations of them — missing and extra fields, wrong types, other spellings of ids and dates,
per-type rule violations, huge strings, unicode, nulls, nested JSON.

jsonb cannot hold NUL characters nor lone surrogates: Postgres refuses such JSON before any
function runs, and the Python face refuses it by name (tests/test_enqueue_arguments.py). The text
generated here leaves them out.
"""

from __future__ import annotations

import datetime
from typing import Any

from hypothesis import strategies as st

TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
HUGE = st.sampled_from(["x" * 1_000_000, "é" * 300_000, "🙂" * 100_000, "a" * 10_001])
FINITE = st.floats(allow_nan=False, allow_infinity=False)
JSON_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), FINITE, TEXT)
JSON = st.recursive(
    JSON_SCALAR,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=6,
)
UUID_SPELLINGS = st.uuids().flatmap(
    lambda u: st.sampled_from(
        [
            str(u),
            str(u).upper(),
            str(u)[:9] + str(u)[9:].upper(),
            "{" + str(u) + "}",
            u.hex,
            u.urn,
            f" {u}",
            f"{u}\n",
            str(u)[:-1],
            str(u).replace("-", "_"),
            str(u).translate(str.maketrans("0123456789", "０１２３４５６７８９")),
        ]
    )
)
DATE_SPELLINGS = st.dates().flatmap(
    lambda d: st.sampled_from(
        [
            d.isoformat(),
            d.isoformat() + "T00:00:00",
            d.isoformat() + " ",
            d.strftime("%Y%m%d"),
            f"{d.year}-{d.month}-{d.day}",
            "+" + d.isoformat(),
            d.isoformat().translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")),
            "2026-02-29",
            "2028-02-29",
            "2026-13-01",
            "0000-01-01",
            str(int(datetime.datetime(d.year, d.month, d.day).timestamp()))
            if d.year > 1970
            else "0",
        ]
    )
)


def valid(spec: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """
    Params of the right shape and types (optional fields present, absent or null); whether they
    satisfy the per-type rules is left to chance, as with any producer.
    """
    required = {k: _value(f) for k, f in spec.items() if f.get("required", True)}
    optional = {
        k: st.one_of(_value(f), st.none()) for k, f in spec.items() if not f.get("required", True)
    }
    return st.fixed_dictionaries(required, optional=optional)


def _value(field: dict[str, Any]) -> st.SearchStrategy[Any]:
    kind = field["type"]
    if kind == "uuid":
        return st.tuples(st.uuids(), st.booleans()).map(
            lambda t: str(t[0]).upper() if t[1] else str(t[0])
        )
    if kind == "date":
        return st.dates().map(datetime.date.isoformat)
    if kind == "enum":
        return st.sampled_from(field["values"])
    if kind == "text":
        return st.text(
            st.characters(codec="utf-8", exclude_characters="\x00"),
            max_size=field.get("max_length", 50),
        )
    if kind == "integer":
        return st.integers()
    if kind == "object":
        return valid(field["fields"])
    raise AssertionError(f"no strategy for field type {kind}")


def _hostile_value(field: dict[str, Any] | None) -> st.SearchStrategy[Any]:
    spellings: list[st.SearchStrategy[Any]] = [JSON, HUGE, TEXT]
    if field is not None and field["type"] == "uuid":
        spellings += [UUID_SPELLINGS] * 3
    if field is not None and field["type"] == "date":
        spellings += [DATE_SPELLINGS] * 3
    if field is not None and field["type"] == "enum":
        values = field["values"]
        spellings.append(st.sampled_from(values).map(str.upper))
        spellings.append(st.sampled_from(values).map(lambda v: v + " "))
    return st.one_of(*spellings)


@st.composite
def hostile(draw: st.DrawFn, spec: dict[str, Any]) -> Any:
    """
    A valid payload, then zero or more mutations of it (or, now and then, no object at all).
    """
    if draw(st.integers(0, 19)) == 0:
        return draw(st.one_of(JSON_SCALAR, st.lists(JSON, max_size=3), HUGE))
    params = draw(valid(spec))
    for _ in range(draw(st.integers(0, 3))):
        params = draw(_mutation(params, spec))
    return params


@st.composite
def _mutation(draw: st.DrawFn, params: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    # The object to change: the payload itself or one of its nested objects.
    objects = [(params, spec)]
    for key, field in spec.items():
        if field["type"] == "object" and isinstance(params.get(key), dict):
            objects.append((params[key], field["fields"]))
    target, target_spec = draw(st.sampled_from(objects))
    action = draw(st.sampled_from(["drop", "extra", "replace", "replace", "rule"]))
    names = sorted(target)
    if action == "drop" and names:
        del target[draw(st.sampled_from(names))]
    elif action == "extra":
        target[draw(st.one_of(TEXT, st.sampled_from(["record_id", "job_type", "x" * 5000])))] = (
            draw(JSON)
        )
    elif action == "replace" and target_spec:
        key = draw(st.sampled_from(sorted(target_spec)))
        target[key] = draw(_hostile_value(target_spec[key]))
    elif action == "rule":
        # Pick a value of an enum with per-type rules and drop one of the fields it needs.
        ruled = [(k, f) for k, f in target_spec.items() if f.get("requires")]
        if ruled:
            key, field = draw(st.sampled_from(ruled))
            value = draw(st.sampled_from(sorted(field["requires"])))
            target[key] = value
            need = draw(st.sampled_from(field["requires"][value])).split(".")
            holder: Any = target
            for part in need[:-1]:
                holder = holder.get(part) if isinstance(holder, dict) else None
            if isinstance(holder, dict):
                holder.pop(need[-1], None)
    return params
