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
        title=subject.group_name,
        body=messages_body(count, row["sender_count"], list(row["sender_names"])),
        data={
            "group_id": str(subject.group_id),
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
    data = {"group_id": str(subject.group_id), "prompt_id": str(subject.prompt_id)}
    if subject.type == "new_prompt":
        return Content(title=f"New prompt in {subject.group_name}", body=row["text"], data=data)
    if row["answered"]:
        return Skip("prompt already answered")
    if not row["current"]:
        return Skip("a newer prompt replaced it")
    return Content(
        title=f"{subject.group_name} is waiting for your answer", body=row["text"], data=data
    )


async def _friend_joined(conn: psycopg.AsyncConnection[Any], subject: Subject) -> Content | Skip:
    row = await sql.row(
        conn, "notification_friend", {"friend_id": subject.friend_id, "group_id": subject.group_id}
    )
    if row is None:
        return Skip("friend not found")
    if not row["is_member"]:
        return Skip("the friend is no longer in the group")
    return Content(
        title=subject.group_name,
        body=f"{row['display_name']} joined {subject.group_name}",
        data={"group_id": str(subject.group_id), "friend_id": str(subject.friend_id)},
    )
