"""
Legacy payloads keep working: every row of README's table "What happens to each legacy payload"
(cut-over section) is published with the real npm `bullmq` (tests/node/producer.mjs, the brief's
BrosephPublisher: attempts 3, exponential backoff) through the ingress, and given to
`broseph.enqueue` in snake_case; each must end exactly as its row says, so the README cannot
drift from the code.
"""

from __future__ import annotations

import datetime
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.types.json import Jsonb

from broseph.ingress import mapping
from tests import factories, readme_support
from tests import ingress_support as support
from tests.conftest import wait_until

UTC = datetime.UTC
MARKER = "**What happens to each legacy payload.**"
OUTCOMES = {"accepted", "defaulted", "quarantined"}


@dataclass(frozen=True)
class Row:
    job: str  # the BullMQ job name
    data: Any  # the payload, placeholders unfilled
    outcome: str
    result: str  # params stored (JSON, placeholders unfilled) or the quarantine reason
    sql: str  # "stored alike", "refused: `params.x`" or "— …"

    def __str__(self) -> str:
        return f"{self.job} {json.dumps(self.data)}"


def rows() -> list[Row]:
    found = []
    for cells in readme_support.table(MARKER):
        job, data, outcome, result, sql = cells.values()
        found.append(Row(job, json.loads(data), outcome, result, sql))
    assert len(found) >= 20 and {r.outcome for r in found} == OUTCOMES
    return found


@dataclass(frozen=True)
class World:
    """
    The ids the placeholders stand for. Only the group must exist (its time zone picks the
    default date); enqueue checks the form of the other ids, not that they exist.
    """

    zone: str
    ids: dict[str, str]

    def fill(self, value: Any, at: datetime.datetime | None = None) -> Any:
        """
        The value with every placeholder replaced; dates as of `at` (the record's creation).
        """
        if isinstance(value, dict):
            return {k: self.fill(v, at) for k, v in value.items()}
        if value == "<the group's local date>":
            assert at is not None
            return at.astimezone(ZoneInfo(self.zone)).date().isoformat()
        if value == "<the UTC date>":
            assert at is not None
            return at.astimezone(UTC).date().isoformat()
        if isinstance(value, str) and value.startswith("<"):
            return self.ids[value]
        return value


async def world(conn: psycopg.AsyncConnection[Any]) -> World:
    # A zone whose date differs from UTC's right now, so a date taken in the wrong zone shows:
    # UTC+14 from 10:00 UTC on, UTC-11 before 11:00 UTC.
    hour = datetime.datetime.now(UTC).hour
    zone = "Pacific/Kiritimati" if hour >= 10 else "Pacific/Pago_Pago"
    group = await factories.group(conn, time_zone=zone)
    ids = {"<group>": str(group)}
    for name in ("<no such group>", "<user>", "<friend>", "<message>", "<prompt>"):
        ids[name] = str(uuid.uuid4())
    return World(zone, ids)


def snake(value: Any) -> Any:
    """
    A camelCase payload as an SQL producer writes it (groupId → group_id).
    """
    if isinstance(value, dict):
        return {re.sub(r"(?<!^)([A-Z])", r"_\1", k).lower(): snake(v) for k, v in value.items()}
    return value


def check_outcome_column(row: Row, stored: dict[str, Any], given: dict[str, Any]) -> None:
    """
    accepted: stored as sent (snake_case, nulls dropped); defaulted: that plus what enqueue added.
    """
    sent = {k: v for k, v in snake(given).items() if v is not None}
    if row.outcome == "accepted":
        assert stored == sent, row
    else:
        assert sent.items() < stored.items(), row


async def test_every_legacy_shape_through_the_node_producer_ends_as_the_readme_says(conn, settings):
    table = rows()
    w = await world(conn)
    queue = support.unique_queue()
    items = [
        {"publish": support.NODE_PUBLISH[r.job], "payload": w.fill(r.data)}
        if r.job in support.NODE_PUBLISH
        else {"publish": "add", "name": r.job, "payload": w.fill(r.data)}
        for r in table
    ]
    async with (
        support.producer(queue) as q,
        support.running_ingress(support.ingress_settings(settings, queue)),
    ):
        published = support.node_publish(queue, items)

        async def settled() -> bool:
            counts = await q.getJobCounts("completed", "failed")
            return counts["completed"] + counts["failed"] == len(table)

        await wait_until(settled, within=60)
        failed = {job.id: job for job in await q.getJobs(["failed"], 0, -1)}

    cur = await conn.execute(
        "SELECT i.delivery_key, r.params, r.created_at, r.source, r.max_attempts, j.args"
        "  FROM broseph.ingress_receipts i"
        "  JOIN broseph.job_records r ON r.id = i.record_id"
        "  JOIN public.procrastinate_jobs j ON j.id = r.procrastinate_job_id"
    )
    records = {row["delivery_key"]: row for row in await cur.fetchall()}
    cur = await conn.execute("SELECT delivery_key, reason FROM broseph.ingress_quarantine")
    quarantined = {row["delivery_key"]: row["reason"] for row in await cur.fetchall()}
    assert len(records) + len(quarantined) == len(table)
    for row, job, item in zip(table, published, items, strict=True):
        key = support.delivery_key(queue, job["id"], job["timestamp"])
        if row.outcome == "quarantined":
            assert key not in records, row
            assert quarantined.get(key) == row.result, row
            assert failed[job["id"]].failedReason == row.result, row
            continue
        assert key not in quarantined, (row, quarantined.get(key))
        record = records[key]
        assert record["params"] == w.fill(json.loads(row.result), record["created_at"]), row
        check_outcome_column(row, record["params"], item["payload"])
        # The publisher's retry policy came along.
        assert record["source"] == "bullmq" and record["max_attempts"] == 3, row
        assert record["args"]["_retry"]["backoff_type"] == "exponential", row


async def test_every_legacy_shape_in_snake_case_through_sql_ends_as_the_readme_says(conn):
    w = await world(conn)
    for row in rows():
        if row.sql.startswith("—"):
            # Only the ingress reads job names; SQL producers name a job type.
            assert row.job not in mapping.DEFAULT_ROUTES and row.outcome == "quarantined", row
            continue
        job_type = mapping.DEFAULT_ROUTES[row.job].job_type
        params = snake(w.fill(row.data))
        try:
            async with conn.transaction(force_rollback=True):
                cur = await conn.execute(
                    "SELECT broseph.enqueue(%s, %s) AS id", (job_type, Jsonb(params))
                )
                record_id = (await cur.fetchone())["id"]
                cur = await conn.execute(
                    "SELECT params, created_at FROM broseph.job_records WHERE id = %s",
                    (record_id,),
                )
                stored = await cur.fetchone()
        except psycopg.errors.InvalidParameterValue as exc:
            refused = re.fullmatch(r"refused: `([\w.]+)`", row.sql)
            assert refused, (row, str(exc))
            assert row.outcome == "quarantined", (row, str(exc))
            assert exc.diag.column_name == refused[1], (row, str(exc))
            continue
        assert row.sql == "stored alike" and row.outcome != "quarantined", row
        assert stored is not None
        assert stored["params"] == w.fill(json.loads(row.result), stored["created_at"]), row
        check_outcome_column(row, stored["params"], w.fill(row.data))
