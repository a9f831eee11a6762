"""
Idempotency keys: every format broseph's own producers use, one builder each.

A key makes a second enqueue of the same thing return the first job (migrations/0004). Some
formats are also built in SQL, where a Python call cannot reach: the new_prompt delivery
(migrations/0040's broseph.notify_prompts_published: `new_prompt_fanout`) and the queries that
skip or recognise what is already enqueued (broseph/queries/prompts.sql: `prompt`;
notifications.sql: `reminder`; group_delivery.sql: `new_prompt` and `quiet_member`, from
deliver_group_event.own_key_pattern).
tests/test_idempotency_keys.py runs each of those on a real database against the builder here;
change both together.
"""

from __future__ import annotations

import datetime
import uuid


def prompt(group_id: uuid.UUID, local_date: datetime.date) -> str:
    """
    A group's daily prompt (GeneratePrompt): once per group per local day.
    """
    return f"prompt:{group_id}:{local_date.isoformat()}"


def engagement(group_id: uuid.UUID, local_date: datetime.date) -> str:
    """
    A group's engagement roll-up of one local day (the nightly ProcessEngagement).
    """
    return f"engagement:{group_id}:{local_date.isoformat()}"


def reminder(user_id: uuid.UUID, prompt_id: uuid.UUID) -> str:
    """
    A member's reminder about one prompt: at most once per prompt.
    """
    return f"reminder:{user_id}:{prompt_id}"


def new_prompt(user_id: uuid.UUID, prompt_id: uuid.UUID) -> str:
    """
    A member's own new_prompt delivery: a group delivery's quiet-hours reschedule (and, before
    migrations/0040, the trigger's or a NotifyMembers fan-out's per-member job).
    """
    return f"new_prompt:{user_id}:{prompt_id}"


def new_prompt_fanout(prompt_id: uuid.UUID) -> str:
    """
    The one delivery of a new prompt: DeliverGroupEvent (broseph.notify_prompts_published,
    migrations/0040), before it a large group's NotifyMembers.
    """
    return f"new_prompt:{prompt_id}"


def friend_joined(fanout_record_id: uuid.UUID, user_id: uuid.UUID) -> str:
    """
    A member's friend_joined notification from one NotifyMembers job (its record id).
    """
    return f"friend_joined:{fanout_record_id}:{user_id}"


def quiet_member(record_id: uuid.UUID, user_id: uuid.UUID) -> str:
    """
    A member's own delivery, rescheduled to the end of their quiet hours by one DeliverGroupEvent
    (its record id): once per member per job. Also built in SQL (broseph/queries/
    group_delivery.sql: `group_event_members`, from the key with '{user_id}' in the member's place).
    """
    return f"quiet:{record_id}:{user_id}"


def quiet(record_id: uuid.UUID) -> str:
    """
    The notification a job in quiet hours re-enqueues for the window's end: once per job.
    """
    return f"quiet:{record_id}"
