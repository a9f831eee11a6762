"""
What each notification type says, built from CURRENT database state — never from the payload.

The payload names the subjects (group, prompt, friend); the text comes from their rows as they
are when the job runs: the group's name now, the prompt's text, the friend's display name, the
messages that arrived since the user last heard about the group. A subject that is gone, or a
reason not to notify that only the data can tell (nothing new, stale, already answered), is a
`Skip` with that reason.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from broseph import sql


@dataclass(frozen=True)
class Subject:
    """
    The job's subject ids and what the handler already loaded about them.
    """

    record_id: uuid.UUID
    user_id: uuid.UUID
    type: str
    group_id: uuid.UUID
    prompt_id: uuid.UUID | None
    friend_id: uuid.UUID | None
    group_name: str


@dataclass(frozen=True)
class Content:
    """
    A notification to send: its text and the deep-link ids of its data payload.
    """

    title: str
    body: str
    data: dict[str, str]
    message_count: int | None = None
    covered_until: datetime.datetime | None = None


@dataclass(frozen=True)
class Skip:
    """
    Nothing to send, and why (stored on the notification and the job's result).
    """

    reason: str
    message_count: int | None = None
    covered_until: datetime.datetime | None = None


async def build(
    conn: psycopg.AsyncConnection[Any],
    subject: Subject,
    *,
    now: datetime.datetime,
    stale_after: datetime.timedelta,
) -> Content | Skip:
    """
    The notification for `subject`, or why there is none.
    """
    if subject.type == "new_message":
        return await _new_message(conn, subject, now, stale_after)
    if subject.type in ("new_prompt", "prompt_reminder"):
        return await _prompt(conn, subject)
    if subject.type == "friend_joined":
        return await _friend_joined(conn, subject)
    raise ValueError(f"unknown notification type {subject.type!r}")


async def _new_message(
    conn: psycopg.AsyncConnection[Any],
    subject: Subject,
    now: datetime.datetime,
    stale_after: datetime.timedelta,
) -> Content | Skip:
    row = await sql.one(
        conn,
        "new_message_summary",
        {"user_id": subject.user_id, "group_id": subject.group_id, "record_id": subject.record_id},
    )
    return new_message(subject.group_id, subject.group_name, row, now=now, stale_after=stale_after)


def new_message(
    group_id: uuid.UUID,
    group_name: str,
    row: Mapping[str, Any],
    *,
    now: datetime.datetime,
    stale_after: datetime.timedelta,
) -> Content | Skip:
    """
    A new_message push from one member's summary of the messages they have not heard about
    (message_count, sender_count, sender_names, newest_id, newest_at: the query
    `new_message_summary`, or one row of `group_event_members`).
    """
    count = row["message_count"]
    if count == 0:
        return Skip("no new messages since the last notification")
    newest_at: datetime.datetime = row["newest_at"]
    if now - newest_at > stale_after:
        minutes = int((now - newest_at).total_seconds() // 60)
        limit = int(stale_after.total_seconds() // 60)
        return Skip(
            f"stale: the newest message is {minutes} minutes old (limit {limit})",
            message_count=count,
            covered_until=newest_at,
        )
    return Content(
        title=group_name,
        body=messages_body(count, row["sender_count"], list(row["sender_names"])),
        data={
            "group_id": str(group_id),
            "message_id": str(row["newest_id"]),
            "message_count": str(count),
        },
        message_count=count,
        covered_until=newest_at,
    )


def messages_body(count: int, sender_count: int, names: list[str]) -> str:
    """
    "Ana sent a message", "3 new messages from Ana and Ben", "9 new messages from Ana, Ben and
    2 more" — counts and names, never a message's text.
    """
    first = names[0] if names else "Someone"
    if count == 1:
        return f"{first} sent a message"
    if sender_count <= 1 or len(names) < 2:
        return f"{count} new messages from {first}"
    if sender_count == 2:
        return f"{count} new messages from {first} and {names[1]}"
    return f"{count} new messages from {first}, {names[1]} and {sender_count - 2} more"


async def _prompt(conn: psycopg.AsyncConnection[Any], subject: Subject) -> Content | Skip:
    row = await sql.row(
        conn,
        "notification_prompt",
        {
            "prompt_id": subject.prompt_id,
            "group_id": subject.group_id,
            "user_id": subject.user_id,
        },
    )
    if row is None:
        return Skip("prompt not found")
    if subject.type == "new_prompt":
        assert subject.prompt_id is not None
        return new_prompt(subject.group_id, subject.group_name, subject.prompt_id, row["text"])
    data = {"group_id": str(subject.group_id), "prompt_id": str(subject.prompt_id)}
    if row["answered"]:
        return Skip("prompt already answered")
    if not row["current"]:
        return Skip("a newer prompt replaced it")
    return Content(
        title=f"{subject.group_name} is waiting for your answer", body=row["text"], data=data
    )


def new_prompt(
    group_id: uuid.UUID, group_name: str, prompt_id: uuid.UUID, text: str | None
) -> Content | Skip:
    """
    A new_prompt push: the prompt's text (None: the prompt is gone).
    """
    if text is None:
        return Skip("prompt not found")
    return Content(
        title=f"New prompt in {group_name}",
        body=text,
        data={"group_id": str(group_id), "prompt_id": str(prompt_id)},
    )


async def _friend_joined(conn: psycopg.AsyncConnection[Any], subject: Subject) -> Content | Skip:
    row = await sql.row(
        conn, "notification_friend", {"friend_id": subject.friend_id, "group_id": subject.group_id}
    )
    assert subject.friend_id is not None
    return friend_joined(
        subject.group_id,
        subject.group_name,
        subject.friend_id,
        None if row is None else row["display_name"],
        row is not None and row["is_member"],
    )


def friend_joined(
    group_id: uuid.UUID,
    group_name: str,
    friend_id: uuid.UUID,
    display_name: str | None,
    is_member: bool,
) -> Content | Skip:
    """
    A friend_joined push: the friend's name now (None: the profile is gone).
    """
    if display_name is None:
        return Skip("friend not found")
    if not is_member:
        return Skip("the friend is no longer in the group")
    return Content(
        title=group_name,
        body=f"{display_name} joined {group_name}",
        data={"group_id": str(group_id), "friend_id": str(friend_id)},
    )
