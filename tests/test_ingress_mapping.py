"""
The ingress mapping, without Redis or Postgres: BullMQ job name → job type, camelCase fields →
the job type's own payload model, producer options → run_at / priority / retry, and a reason for
everything it refuses (hand-picked cases plus ≥ 500 hypothesis-generated ones).
"""

from __future__ import annotations

import datetime
import subprocess
import sys
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broseph import jobs
from broseph.ingress import mapping
from broseph.settings import Settings
from tests import ingress_strategies as strategies
from tests import ingress_support as support

TS = 1_790_000_000_000  # a BullMQ job.timestamp (ms)
LIMIT = 1024


def delivery(name: str, data: Any, options: dict[str, Any] | None = None, job_id: str = "7"):
    return support.delivery(name, data, job_id=job_id, options=options or {}, timestamp_ms=TS)


def plan(d: mapping.Delivery, routes: dict[str, mapping.Route] | None = None) -> mapping.Plan:
    return mapping.plan(d, routes or mapping.DEFAULT_ROUTES, max_payload_bytes=LIMIT)


def test_routes_cover_the_nestjs_job_names():
    assert set(mapping.DEFAULT_ROUTES) == {
        "GeneratePrompt",
        "SendNotification",
        "ProcessEngagement",
    }
    assert "ProcessEngagement" in support.live_routes()


@pytest.mark.parametrize("name", sorted(support.live_routes()))
def test_camelcase_payload_is_validated_by_the_job_types_own_model(name: str):
    data, params = support.valid_pair(name)
    planned = plan(delivery(name, data))
    model = jobs.get(mapping.DEFAULT_ROUTES[name].job_type).payload
    assert type(planned.payload) is model
    assert planned.payload == model.model_validate(params)


def test_process_engagement_fields_are_renamed():
    gid = str(uuid.uuid4())
    planned = plan(delivery("ProcessEngagement", {"groupId": gid, "localDate": "2026-01-05"}))
    assert planned.payload.to_params() == {"group_id": gid, "local_date": "2026-01-05"}


def test_send_notification_camelcase_data_is_renamed_too():
    if "SendNotification" not in support.live_routes():
        pytest.skip("SendNotification is not in the catalogue of this build")
    uid, gid, mid = (str(uuid.uuid4()) for _ in range(3))
    data = {"userId": uid, "type": "new_message", "data": {"groupId": gid, "messageId": mid}}
    params = plan(delivery("SendNotification", data)).payload.to_params()
    assert params == {
        "user_id": uid,
        "type": "new_message",
        "data": {"group_id": gid, "message_id": mid},
    }
    bad = {**data, "data": {"groupId": "nope"}}
    with pytest.raises(mapping.Rejected, match=r"data\.groupId \(data\.group_id\): Input should"):
        plan(delivery("SendNotification", bad))


def test_producer_options_become_run_at_priority_and_retry():
    options = {
        "attempts": 3,
        "backoff": {"type": "exponential", "delay": 1000},
        "delay": 10_000,
        "priority": 3,
    }
    planned = plan(delivery("ProcessEngagement", support.valid_data("ProcessEngagement"), options))
    assert planned.retry == {
        "max_attempts": 3,
        "backoff_seconds": 1.0,
        "backoff_type": "exponential",
    }
    assert planned.run_at == support.utc(TS) + datetime.timedelta(seconds=10)
    assert planned.priority == -3


def test_numeric_backoff_is_fixed_and_no_attempts_keeps_the_job_types_budget():
    data = support.valid_data("ProcessEngagement")
    fixed = plan(delivery("ProcessEngagement", data, {"attempts": 2, "backoff": 5000}))
    assert fixed.retry == {"max_attempts": 2, "backoff_seconds": 5.0, "backoff_type": "fixed"}
    bare = plan(delivery("ProcessEngagement", data, {}))
    assert bare.retry is None and bare.run_at is None and bare.priority == 0
    assert mapping.backoff_type({"backoff": 5000}) == "fixed"
    assert mapping.backoff_type({"backoff": {"type": "jitterish", "delay": 1}}) == "jitterish"
    assert mapping.backoff_type({}) is None


def test_bullmq_priority_order_is_kept():
    # BullMQ runs jobs without priority first, then 1 (highest) … 2^21; procrastinate runs the
    # highest number first.
    data = support.valid_data("ProcessEngagement")
    order = [0, 1, 2, 10]
    mapped = [plan(delivery("ProcessEngagement", data, {"priority": p})).priority for p in order]
    assert mapped == sorted(mapped, reverse=True)
    assert len(set(mapped)) == len(mapped)


def test_delivery_key_includes_the_timestamp_only_for_auto_generated_ids():
    data = support.valid_data("ProcessEngagement")
    assert delivery("ProcessEngagement", data).key == f"bullmq:broseph-jobs:7:{TS}"
    custom = delivery("ProcessEngagement", data, job_id="engagement-42")
    assert custom.key == "bullmq:broseph-jobs:engagement-42"


def test_raw_form_is_lossless():
    d = delivery("Send\x00Push", {"text": "nul \x00 and lone \ud800 surrogate", "n": [1, 2.5]})
    raw = d.raw()
    assert raw.isascii() and "\x00" not in raw
    back = mapping.Delivery.from_raw(source="bullmq", queue="broseph-jobs", job_id="7", raw=raw)
    assert back == d


def test_ingress_job_map_adds_and_overrides_routes():
    custom = Settings(
        _env_file=None,  # type: ignore[call-arg]
        ingress_job_map={
            "SendPush": {"job_type": "ProcessEngagement", "fields": {"gid": "group_id"}},
            "ProcessEngagement": {"job_type": "ProcessEngagement", "fields": {"g": "group_id"}},
        },
    )
    routes = mapping.routes_from(custom)
    assert routes["SendPush"].fields == {"gid": "group_id"}
    assert routes["ProcessEngagement"].fields == {"g": "group_id"}
    assert routes["GeneratePrompt"] == mapping.DEFAULT_ROUTES["GeneratePrompt"]
    gid = str(uuid.uuid4())
    planned = plan(delivery("SendPush", {"gid": gid, "local_date": "2026-01-05"}), routes)
    assert planned.payload.to_params()["group_id"] == gid


def test_ingress_job_map_from_the_environment_and_its_errors(monkeypatch):
    monkeypatch.setenv("INGRESS_JOB_MAP", '{"SendPush": {"job_type": "SendNotification"}}')
    assert Settings(_env_file=None).ingress_job_map == {  # type: ignore[call-arg]
        "SendPush": {"job_type": "SendNotification"}
    }
    bad = Settings(_env_file=None, ingress_job_map={"X": {"jobtype": "Y"}})  # type: ignore[call-arg]
    with pytest.raises(mapping.InvalidMapping, match=r"INGRESS_JOB_MAP\['X'\].*job_type"):
        mapping.routes_from(bad)


HAND_PICKED = [
    ("unknown name", "SendPush", {"userId": str(uuid.uuid4())}, "unknown job name 'SendPush'"),
    (
        "missing field",
        "ProcessEngagement",
        {"localDate": "2026-01-05"},
        "groupId (group_id): Field required",
    ),
    (
        "invalid uuid",
        "ProcessEngagement",
        {"groupId": "not-a-uuid", "localDate": "2026-01-05"},
        "groupId (group_id): Input should be a valid UUID",
    ),
    (
        "invalid date",
        "ProcessEngagement",
        {"groupId": str(uuid.uuid4()), "localDate": "2026-02-30"},
        "localDate (local_date)",
    ),
    (
        "unknown field",
        "ProcessEngagement",
        {"groupId": str(uuid.uuid4()), "localDate": "2026-01-05", "message": "hi"},
        "message: Extra inputs are not permitted",
    ),
    ("array data", "ProcessEngagement", [1, 2], "data must be a JSON object, got array"),
    ("string data", "ProcessEngagement", "groupId", "data must be a JSON object, got string"),
    ("null data", "ProcessEngagement", None, "data must be a JSON object, got null"),
    ("oversized", "ProcessEngagement", {"groupId": "x" * 2000}, "over the 1024-byte limit"),
    (
        "colliding renames",
        "ProcessEngagement",
        {"groupId": str(uuid.uuid4()), "group_id": str(uuid.uuid4()), "localDate": "2026-01-05"},
        "both give 'group_id'",
    ),
]


@pytest.mark.parametrize(("kind", "name", "data", "fragment"), HAND_PICKED, ids=lambda v: str(v))
def test_hand_picked_bad_input_is_rejected_with_a_reason(kind, name, data, fragment):
    with pytest.raises(mapping.Rejected) as caught:
        plan(delivery(name, data))
    assert fragment in caught.value.reason, (kind, caught.value.reason)


def test_a_job_type_missing_from_the_catalogue_is_rejected():
    routes = {"Future": mapping.Route(job_type="NotBuiltYet")}
    with pytest.raises(mapping.Rejected, match="maps to job type 'NotBuiltYet'"):
        plan(delivery("Future", {}), routes)


def test_invalid_producer_options_are_rejected():
    data = support.valid_data("ProcessEngagement")
    with pytest.raises(mapping.Rejected, match="producer options: priority"):
        plan(delivery("ProcessEngagement", data, {"priority": "urgent"}))


def test_reasons_name_fields_but_never_echo_values():
    secret = "sk-live-very-private-token-value"
    with pytest.raises(mapping.Rejected) as caught:
        plan(delivery("ProcessEngagement", {"groupId": secret, "localDate": "2026-01-05"}))
    assert "groupId" in caught.value.reason and secret not in caught.value.reason


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strategies.malformed_jobs(LIMIT))
def test_generated_malformed_jobs_are_rejected_with_their_reason(case):
    kind, name, data, fragment = case
    with pytest.raises(mapping.Rejected) as caught:
        plan(delivery(name, data))
    assert caught.value.reason
    assert fragment in caught.value.reason, (kind, caught.value.reason)


_ANY_OPTIONS = st.dictionaries(
    st.sampled_from(["attempts", "backoff", "delay", "priority", "jobId", "lifo"]),
    st.one_of(st.integers(-5, 10**6), st.text(max_size=5), st.none(), st.booleans()),
)


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(sorted(mapping.DEFAULT_ROUTES)) | st.text(max_size=10),
    data=st.dictionaries(
        st.sampled_from(["groupId", "localDate", "userId", "type", "data", "x"]),
        st.one_of(st.uuids().map(str), st.just("2026-01-05"), st.just("new_message"), st.none()),
    )
    | st.integers(),
    options=_ANY_OPTIONS,
)
def test_any_input_yields_a_plan_or_a_reason_never_a_crash(name, data, options):
    try:
        planned = plan(delivery(name, data, options))
    except mapping.Rejected as exc:
        assert exc.reason
    else:
        assert planned.payload.job_type == mapping.DEFAULT_ROUTES[name].job_type


def test_the_core_never_imports_redis_or_bullmq():
    code = (
        "import sys, broseph.worker, broseph.cli, broseph.ingress, broseph.ingress.cli, "
        "broseph.ingress.quarantine; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('bullmq', 'redis')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
