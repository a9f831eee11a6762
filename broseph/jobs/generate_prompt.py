"""
GeneratePrompt: one group's conversation prompt for one local day, and the fan-out that asks for it.

Natural key: (group_id, local_date) in public.prompts — the INSERT does nothing on conflict, so a
re-run (a retry after a crash between storing and completing, a second job for the same day)
stores nothing new. Enqueued by the `prompt_fanout` periodic task below (idempotency key
`prompt:<group_id>:<local_date>`) for every active group whose local prompt hour (PROMPT_HOUR)
comes within PROMPT_LEAD_MINUTES — their run_at spread over the lead, so the AI budget is not
one storm — and, at the hour, for every group that still has neither prompt nor job; and by
anything else that wants a group's prompt now.

Ready before the hour, published at it (migrations/0038): a prompt the schedule asked for ahead,
stored before its group's local prompt hour, waits unpublished (published_at NULL, invisible to
clients); the `prompt_publish` tick publishes every due prompt in ONE statement
(broseph.publish_due_prompts), and publishing is what notifies members. A prompt stored at or
after the hour (the AI was late, the group is new, no lead), or asked for by anything but the
schedule ("generate now"), is published as it is stored.

The AI policy, in one place (`_generate`):
  no API key                  → the offline bank (the default, not a fallback: no warning)
  no share of OPENAI_RPM / OPENAI_TPM left (broseph/budgets.py)
                              → snoozed: the job waits for its share, no attempt spent, no request
  429 rate limit (not quota)  → the shared budget is shut for the server's wait (Retry-After,
                                x-ratelimit-reset-*) and the job snoozed for it: a rate limit is
                                ours to wait out, never a reason for the bank
  transient (5xx, timeout, connection), asked for ahead by the schedule, before the hour
                              → snoozed until the hour: no attempt spent, never the bank before
                                the AI has had its chance at the hour
  transient (5xx, timeout, connection), otherwise
                              → raise: the job retries with backoff; on its LAST attempt, the bank
  permanent (401, 403, 400, insufficient_quota)
                              → the bank at once
  unusable output (bad JSON, empty, too long, a repeat of the last 30)
                              → one regeneration, then the bank
Every fallback records source 'offline' on the prompt and logs a `prompt_fallback` warning.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass
from typing import Any, ClassVar, NoReturn

import croniter
import psycopg

from broseph import budgets, db, enqueue, idempotency, sql
from broseph.errors import PermanentJobError, RetryableJobError, Snooze
from broseph.jobs.base import Day, Id, JobPayload, JobRun, JobType, Periodic
from broseph.providers.ai import (
    MAX_SAMPLE_MESSAGES,
    AIOutputError,
    AIPermanentError,
    AIRateLimitedError,
    AITransientError,
    PromptContext,
    PromptDraft,
    PromptGenerator,
    estimate_tokens,
    normalize_prompt,
)
from broseph.services import Services
from broseph.settings import Settings

ACTIVITY_DAYS = 7
MAX_UUID = 2**128 - 1


class GeneratePrompt(JobPayload):
    job_type: ClassVar[str] = "GeneratePrompt"

    group_id: Id
    # The local date travels in the payload because "today" is not stable: a job enqueued at
    # 23:50 in the group's time zone may run — or be retried after a crash or a rate limit — after
    # midnight. Deriving the date at run time would then store the prompt under the NEXT day
    # (whose own job would find it taken) and leave the intended day empty, while the idempotency
    # key `prompt:<group>:<date>` would name one day and the stored row another. Fixed at enqueue,
    # the key, the payload and the stored row always agree. It is optional for producers that only
    # know the group: the handler then uses the group's local date at the record's created_at
    # (enqueue time), which no retry can move either.
    local_date: Day | None = None


@dataclass(frozen=True)
class _Group:
    name: str
    active: bool
    local_date: datetime.date
    member_count: int
    # Asked for by the schedule ahead of the group's local prompt hour (not yet reached): the
    # prompt is stored waiting for it; anything else is published as it is stored.
    ahead: bool
    until_due: float  # seconds until that hour (0 when reached)


# --- the handler --------------------------------------------------------------------------------


async def handle(run: JobRun, payload: GeneratePrompt) -> None:
    group = await _load_group(run, payload)
    local_date = group.local_date
    run.result = {"local_date": local_date.isoformat()}
    async with db.statements(run.pool) as conn:
        existing = await sql.row(
            conn, "prompt_for_day", {"group_id": payload.group_id, "local_date": local_date}
        )
    if existing is not None:
        # A re-run (e.g. after a crash between storing and completing): no AI call, no write.
        await run.progress(100, "already stored")
        run.result.update(stored=False, prompt_id=str(existing["id"]), source=existing["source"])
        return
    if not group.active:
        await run.progress(100, "group inactive")
        run.result.update(stored=False, skipped="group inactive")
        return
    ctx = await _context(run, payload.group_id, group)
    await run.progress(30, "context loaded")
    draft, source = await _generate(run, payload.group_id, ctx, group)
    await run.progress(70, "generated")
    prompt_id = await _store(run, payload.group_id, group, draft, source)
    await run.progress(90, "stored" if prompt_id else "already stored")
    run.result.update(stored=prompt_id is not None, source=source, category=draft.category)
    if prompt_id is not None:
        run.result["prompt_id"] = str(prompt_id)


async def _load_group(run: JobRun, payload: GeneratePrompt) -> _Group:
    async with db.statements(run.pool) as conn:
        row = await sql.row(
            conn,
            "prompt_group",
            {
                "group_id": payload.group_id,
                "local_date": payload.local_date,
                "record_id": run.record_id,
                "now": run.services.clock(),
                "hour": run.services.settings.prompt_hour,
            },
        )
    if row is None:
        raise PermanentJobError(f"group {payload.group_id} not found")
    return _Group(**row)


async def _context(run: JobRun, group_id: uuid.UUID, group: _Group) -> PromptContext:
    """
    What the prompt writer may know: current DB state, and message text only when allowed.
    """
    params: dict[str, Any] = {"group_id": group_id, "local_date": group.local_date}
    send_text = run.services.ai is not None and run.services.settings.ai_send_message_text
    samples: list[str] = []
    async with db.statements(run.pool) as conn:
        recent = [row["text"] for row in await sql.rows(conn, "recent_prompts", params)]
        activity = await sql.one(conn, "prompt_activity", params)
        if send_text:
            limited = {**params, "limit": MAX_SAMPLE_MESSAGES}
            samples = [
                row["body"] for row in await sql.rows(conn, "prompt_sample_messages", limited)
            ]
    return PromptContext(
        group_name=group.name,
        member_count=group.member_count,
        local_date=group.local_date,
        recent_prompts=recent,
        activity=(
            f"{activity['messages']} messages from {activity['senders']} of "
            f"{group.member_count} members in the last {ACTIVITY_DAYS} days"
        ),
        sample_messages=samples,
    )


async def _generate(
    run: JobRun, group_id: uuid.UUID, ctx: PromptContext, group: _Group
) -> tuple[PromptDraft, str]:
    """
    The prompt and its source ('openai' | 'offline'), by the policy in the module docstring.
    """
    ai = run.services.ai
    if ai is None:
        return _offline(run, group_id, ctx), "offline"
    try:
        return await _ask(run, ai, ctx), "openai"
    except AIRateLimitedError as err:
        await _rate_limited(run, err)
    except AITransientError as err:
        if group.ahead:
            # Ahead of the hour there is time: the AI gets its chance again at the hour (the
            # retries and the bank's last word come then), and no attempt is spent meanwhile.
            raise Snooze(
                max(group.until_due, 1.0),
                f"AI unavailable ahead of the prompt hour ({err.reason}); trying again at the hour",
            ) from None
        if not run.is_last_attempt:
            # The lifecycle logs job_failed and the record shows 'retrying' with this reason.
            raise RetryableJobError(f"AI unavailable: {err.reason}") from None
        reason, detail = "transient_error_on_last_attempt", err.reason
    except AIPermanentError as err:
        reason, detail = "permanent_error", err.reason
    except AIOutputError as err:
        reason, detail = "unusable_output", err.reason
    run.log.warning(
        "prompt_fallback",
        reason=reason,
        error=detail,
        group_id=str(group_id),
        local_date=ctx.local_date.isoformat(),
        attempt=run.attempt,
    )
    run.result["fallback_reason"] = f"{reason}: {detail}"
    return _offline(run, group_id, ctx), "offline"


# A 429 without a wait in its headers: about what OpenAI's own limits reset in.
_DEFAULT_RATE_LIMIT_WAIT = 2.0


async def _rate_limited(run: JobRun, err: AIRateLimitedError) -> NoReturn:
    """
    A real 429: no share of the shared budget until the server's wait is over, and this job waits
    for it too — no attempt spent, no fallback (it is not the model failing).
    """
    wait = err.retry_after if err.retry_after else _DEFAULT_RATE_LIMIT_WAIT
    settings = run.services.settings
    for limit, name, per_minute in (
        ("requests", budgets.OPENAI_REQUESTS, settings.openai_rpm),
        ("tokens", budgets.OPENAI_TOKENS, settings.openai_tpm),
    ):
        if per_minute is not None and limit in err.exhausted:
            await budgets.tighten(run.pool, name, wait)
    said = "the server asked for" if err.retry_after else "the server named no wait; waiting"
    raise Snooze(wait, f"OpenAI rate limit ({err.reason}); {said} {wait:.1f} s")


async def _ask(run: JobRun, ai: PromptGenerator, ctx: PromptContext) -> PromptDraft:
    """
    The AI's prompt; an unusable one is asked for once more before giving up. Each request first
    takes its share of the shared budgets (or the job snoozes).
    """
    try:
        await _take_budget(run, ctx)
        return _usable(await ai.generate(ctx), ctx)
    except AIOutputError as err:
        run.log.info("prompt_regenerate", error=err.reason)
    await _take_budget(run, ctx)
    return _usable(await ai.generate(ctx), ctx)


async def _take_budget(run: JobRun, ctx: PromptContext) -> None:
    settings = run.services.settings
    if settings.openai_rpm is None and settings.openai_tpm is None:
        return  # unlimited: no round trip
    async with db.statements(run.pool) as conn:
        refused = await budgets.take(
            conn,
            [
                budgets.Take(budgets.OPENAI_REQUESTS, 1, settings.openai_rpm),
                budgets.Take(budgets.OPENAI_TOKENS, estimate_tokens(ctx), settings.openai_tpm),
            ],
        )
    if refused is not None:
        raise refused


def _usable(draft: PromptDraft, ctx: PromptContext) -> PromptDraft:
    # The OpenAI adapter checks repeats itself; checked again here so the rule holds for any
    # PromptGenerator, not just that one.
    recent = {normalize_prompt(text) for text in ctx.recent_prompts}
    if normalize_prompt(draft.text) in recent:
        raise AIOutputError("repeat of a recent prompt")
    return draft


def _offline(run: JobRun, group_id: uuid.UUID, ctx: PromptContext) -> PromptDraft:
    return run.services.prompt_bank.pick(
        group_id=group_id, local_date=ctx.local_date, recent_prompts=ctx.recent_prompts
    )


async def _store(
    run: JobRun, group_id: uuid.UUID, group: _Group, draft: PromptDraft, source: str
) -> uuid.UUID | None:
    async with db.statements(run.pool) as conn:
        row = await sql.row(
            conn,
            "store_prompt",
            {
                "group_id": group_id,
                "local_date": group.local_date,
                "text": draft.text,
                "category": draft.category,
                "follow_up": draft.follow_up,
                "source": source,
                "now": run.services.clock(),
                "hour": run.services.settings.prompt_hour,
                "ahead": group.ahead,
            },
        )
    return uuid.UUID(str(row["id"])) if row else None


# --- the periodic fan-out -----------------------------------------------------------------------


# Pre-generation spreads the jobs over this share of the time left until their hour (the rest is
# for retries and budget snoozes), in this many run_at slots, the groups in id order (query
# prompt_fanout_ahead); 240 keeps a slot of 10,000 groups near OPENAI_RPM/60, the budget's burst,
# at 3,000 RPM.
SPREAD = 0.75
SPREAD_SLOTS = 240


async def fan_out(services: Services, timestamp: int) -> int:
    """
    Enqueue GeneratePrompt for every group due at the tick, then for every group whose prompt
    hour comes within PROMPT_LEAD_MINUTES (spread over it); returns how many jobs it sent.
    """
    settings = services.settings
    async with services.pool.connection() as conn:
        return await fan_out_on(
            conn,
            datetime.datetime.fromtimestamp(timestamp, datetime.UTC),
            hour=settings.prompt_hour,
            chunk_size=settings.fanout_chunk_size,
            lead=datetime.timedelta(minutes=settings.prompt_lead_minutes),
        )


async def fan_out_on(
    conn: psycopg.AsyncConnection[Any],
    now: datetime.datetime,
    *,
    hour: int,
    chunk_size: int,
    lead: datetime.timedelta = datetime.timedelta(0),
) -> int:
    """
    The fan-out on one connection: first the groups due at `now` (query prompt_fanout, today's
    path, their jobs run at once), then — with a lead — those due within `lead` of it (query
    prompt_fanout_ahead, run_at spread). A statement per chunk of `chunk_size` groups (in id
    order): which of them are due, their payloads and keys, and the enqueue happen inside
    Postgres, so no group list makes a round trip through Python.

    Each chunk is its own transaction: a crash halfway leaves the committed chunks' jobs in place
    and the next tick finds the rest. Two workers ticking at once, or a re-run of a tick, send the
    same keys, which add no job (enqueue takes the keys in sorted order, so two overlapping
    batches wait on each other rather than deadlock). Both passes use the same key per group and
    local date, so a day's prompt is asked for once whichever pass comes first.
    """
    params: dict[str, Any] = {"now": now, "hour": hour, "job_type": GeneratePrompt.job_type}
    total = await _chunks(conn, "prompt_fanout", params, chunk_size)
    if lead > datetime.timedelta(0):
        ahead = {**params, "lead": lead, "spread": SPREAD, "slots": SPREAD_SLOTS}
        async with conn.transaction():
            ahead["total"] = (await sql.one(conn, "prompt_fanout_ahead_total", ahead))["total"]
        total += await _chunks(conn, "prompt_fanout_ahead", ahead, chunk_size)
    return total


async def _chunks(
    conn: psycopg.AsyncConnection[Any], query: str, params: dict[str, Any], chunk_size: int
) -> int:
    found = numbered = 0
    start = uuid.UUID(int=0)
    while True:
        async with conn.transaction():
            # seq: the groups the earlier chunks numbered (the ahead query's spread goes on).
            chunk = await sql.one(
                conn, query, {**params, "from": start, "limit": chunk_size, "seq": numbered}
            )
        found += int(chunk["found"])
        numbered += int(chunk.get("numbered", 0))
        last: uuid.UUID | None = chunk["last"]
        if chunk["scanned"] < chunk_size or last is None or last.int == MAX_UUID:
            return found
        start = uuid.UUID(int=last.int + 1)


async def publish(services: Services, timestamp: int) -> int:
    """
    The prompt_publish tick: every prompt waiting for a local prompt hour reached at the tick is
    published, and its members notified, by one statement in one transaction; returns how many.
    """
    async with services.pool.connection() as conn:
        return await publish_on(
            conn,
            datetime.datetime.fromtimestamp(timestamp, datetime.UTC),
            hour=services.settings.prompt_hour,
        )


async def publish_on(
    conn: psycopg.AsyncConnection[Any], now: datetime.datetime, *, hour: int
) -> int:
    async with conn.transaction():
        row = await sql.one(conn, "publish_due_prompts", {"now": now, "hour": hour})
    return int(row["published"])


async def enqueue_today(
    conn: psycopg.AsyncConnection[Any], group_ids: list[uuid.UUID], *, source: str = "api"
) -> list[uuid.UUID]:
    """
    Ask for each group's prompt for its local today now, whatever the hour (in the caller's
    transaction); the same keys as the fan-out, so the schedule will not add a second job.
    Returns the record ids in the order of `group_ids` (unknown groups are left out).
    """
    payloads = [
        GeneratePrompt(group_id=row["group_id"], local_date=row["local_date"])
        for row in await sql.rows(conn, "local_today", {"group_ids": group_ids})
    ]
    keys = [idempotency.prompt(p.group_id, _date(p)) for p in payloads]
    return await enqueue.enqueue_many(conn, payloads, idempotency_keys=keys, source=source)


def _date(payload: GeneratePrompt) -> datetime.date:
    assert payload.local_date is not None  # producers in this module always set it
    return payload.local_date


def prompt_cron(settings: Settings) -> str:
    """
    PROMPT_CRON, checked to fire at least hourly: a group is due from the first tick at or after
    its prompt hour, so a sparser cron would make whole time zones wait.
    """
    cron = str(settings.prompt_cron)
    if not croniter.croniter.is_valid(cron):
        raise ValueError(f"PROMPT_CRON={cron!r} is not a valid cron expression")
    # croniter normalises full ranges ("0-23", "1-31") to "*": hours, days of month, months and
    # weekdays must be "every", so the minutes listed (and a sixth, seconds field, if any) fire in
    # each hour of each day.
    _minutes, *every = croniter.croniter(cron).expanded[:5]
    if any(field != ["*"] for field in every):
        raise ValueError(f"PROMPT_CRON={cron!r} must fire in every hour of every day")
    return cron


JOB = JobType(
    payload=GeneratePrompt,
    handle=handle,
    queue="prompts",
    # 30 s, 60 s, 120 s between attempts: about 3.5 minutes of a rate-limited or failing API
    # before the last attempt settles for the offline bank.
    max_attempts=4,
    backoff_base_seconds=30.0,
    uses=frozenset({"ai"}),
    description="The daily conversation prompt of one group for one local day, written by OpenAI"
    " when a key is configured and by the offline bank otherwise (or when the AI gives up),"
    " stored in public.prompts with its source.",
    # Two jobs for one group (a scheduled one and a manual one under another key) never run at
    # once; the INSERT … ON CONFLICT DO NOTHING settles any that race.
    lock_fields=("group_id",),
)

PERIODIC = (
    Periodic(name="prompt_fanout", cron=prompt_cron, run=fan_out),
    # On the same cron: at the tick that reaches a zone's prompt hour, its waiting prompts go out.
    Periodic(name="prompt_publish", cron=prompt_cron, run=publish),
)
