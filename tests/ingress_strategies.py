"""
Hypothesis strategies for BullMQ jobs the ingress must quarantine: unknown names, non-object data,
missing fields, invalid values, unknown fields and oversized payloads — built from each job type's
own field spec, each case carrying a fragment its quarantine reason must contain.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from hypothesis import strategies as st

from broseph import jobs
from broseph.ingress import mapping
from broseph.jobs.base import field_spec
from tests.ingress_support import live_routes, required_fields, valid_data


def _not_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return True
    return False


_JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
_JSON = st.recursive(
    _JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
# Text that no date parser reads as a date or a timestamp (it holds a letter outside T/Z).
_NOT_DATE = st.text(max_size=20).filter(lambda s: re.search(r"[^0-9\-:TZtz+., ]", s) is not None)


def bad_values(spec: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    """
    Values the payload model must refuse for a field of this spec (null only when required).
    """
    kind = spec["type"]
    containers = st.lists(st.integers(), max_size=3) | st.dictionaries(
        st.text(max_size=5), st.integers(), max_size=2
    )
    options: list[st.SearchStrategy[Any]] = [containers]
    if spec.get("required", True):
        options.append(st.none())
    if kind == "uuid":
        options += [st.text(max_size=40).filter(_not_uuid), st.integers(), st.booleans()]
    elif kind == "date":
        options += [_NOT_DATE, st.booleans()]
    elif kind == "enum":
        options += [st.text(max_size=20).filter(lambda s: s not in spec["values"]), st.integers()]
    elif kind == "integer":
        options += [_NOT_DATE, st.floats(allow_nan=False).filter(lambda f: f != int(f))]
    elif kind == "text":
        options = [st.none()] if spec.get("required", True) else []
        options += [st.integers(), st.booleans(), containers]
    elif kind == "object":
        options = [st.none()] if spec.get("required", True) else []
        options += [st.integers(), st.booleans(), st.text(max_size=10), st.lists(st.integers())]
    return st.one_of(options)


MalformedCase = tuple[str, str, Any, str]  # (kind, job name, data, expected fragment of reason)


def malformed_jobs(max_payload_bytes: int) -> st.SearchStrategy[MalformedCase]:
    """
    BullMQ jobs the ingress must quarantine, each with a fragment its reason must contain.
    """
    routes = live_routes()
    names = sorted(routes)
    known = st.sampled_from(names)

    def unknown_name(name: str) -> MalformedCase:
        return ("unknown name", name, valid_data(names[0]), "unknown job name")

    def non_object(pair: tuple[str, Any]) -> MalformedCase:
        return ("non-object", pair[0], pair[1], "must be a JSON object")

    @st.composite
    def missing(draw: st.DrawFn) -> MalformedCase:
        name = draw(known)
        outside, _ = draw(st.sampled_from(required_fields(name)))
        data = valid_data(name)
        del data[outside]
        return ("missing field", name, data, "Field required")

    @st.composite
    def invalid(draw: st.DrawFn) -> MalformedCase:
        name = draw(known)
        route = routes[name]
        spec = field_spec(jobs.get(route.job_type).payload)
        field = draw(st.sampled_from(sorted(spec)))
        outside = mapping.outside_paths(route).get(field, field)
        data = valid_data(name)
        data[outside] = draw(bad_values(spec[field]))
        return ("invalid value", name, data, outside)

    @st.composite
    def unknown_field(draw: st.DrawFn) -> MalformedCase:
        name = draw(known)
        route = routes[name]
        taken = set(field_spec(jobs.get(route.job_type).payload)) | set(route.fields)
        extra = draw(st.text(min_size=1, max_size=12).filter(lambda k: k not in taken))
        data = {**valid_data(name), extra: draw(_JSON_SCALARS)}
        return ("unknown field", name, data, "Extra inputs are not permitted")

    @st.composite
    def oversized(draw: st.DrawFn) -> MalformedCase:
        name = draw(known)
        size = draw(st.integers(max_payload_bytes + 1, max_payload_bytes * 3))
        data = {**valid_data(name), "note": draw(st.sampled_from("xé✓")) * size}
        return ("oversized", name, data, "byte limit")

    return st.one_of(
        st.text(max_size=30).filter(lambda n: n not in routes).map(unknown_name),
        st.tuples(known, _JSON.filter(lambda v: not isinstance(v, dict))).map(non_object),
        missing(),
        invalid(),
        unknown_field(),
        oversized(),
    )


def collect(strategy: st.SearchStrategy[Any], count: int) -> list[Any]:
    """
    Draw `count` examples with hypothesis's generator (no shrinking: each is checked end to end).
    """
    from hypothesis import HealthCheck, Phase, given
    from hypothesis import settings as hsettings

    drawn: list[Any] = []

    @hsettings(
        max_examples=count,
        phases=[Phase.generate],
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def draw(example: Any) -> None:
        drawn.append(example)

    draw()
    return drawn
