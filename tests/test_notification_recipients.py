"""
"Who is notified" is one rule (broseph.notification_recipients, migrations/0037): a group event's
delivery (DeliverGroupEvent's decision query, migrations/0040) and the NotifyMembers fan-out that
old queued jobs still run reach the same members, case by case.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import pytest

from broseph import sql
from tests import factories

# Each role is one member of the group; whether the rule notifies them, per notification type.
# Preferences and quiet hours are decided per member after the rule, for both paths alike: such
# members are recipients here.
ROLES: dict[str, dict[str, bool]] = {
    "plain": {"new_message": True, "friend_joined": True, "new_prompt": True},
    "muted": {"new_message": False, "friend_joined": False, "new_prompt": False},
    "type_switched_off": {"new_message": True, "friend_joined": True, "new_prompt": True},
    "in_quiet_hours": {"new_message": True, "friend_joined": True, "new_prompt": True},
    # friend_joined: only members who joined before the friend, by joined_at.
    "joined_with_the_friend": {"friend_joined": False},
    "joined_earlier_in_the_friends_transaction": {"friend_joined": False},
    "imported_with_the_friend_but_joined_long_ago": {"friend_joined": True},
}
# Roles present before the event, in their own statements (the rest join with the friend).
_BEFORE = ("plain", "muted", "type_switched_off", "in_quiet_hours")


async def _arrange(conn: Any) -> tuple[uuid.UUID, dict[str, uuid.UUID]]:
    gid = await factories.group(conn)
    users = {role: await factories.user(conn, name=role) for role in ROLES}
    for role in _BEFORE:
        await factories.member(conn, gid, users[role])
    await conn.execute(
        "UPDATE public.group_members SET muted = true WHERE user_id = %s", (users["muted"],)
    )
    await conn.execute(
        "INSERT INTO public.notification_preferences"
        " (user_id, new_message, friend_joined, new_prompt) VALUES (%s, false, false, false)",
        (users["type_switched_off"],),
    )
    await conn.execute(
        "INSERT INTO public.notification_preferences (user_id, quiet_start, quiet_end)"
        " VALUES (%s, '00:00', '23:59:59')",
        (users["in_quiet_hours"],),
    )
    return gid, users


async def _event(conn: Any, kind: str, gid: uuid.UUID, users: dict[str, uuid.UUID]) -> dict:
    """
    Make the event happen (its trigger enqueues the delivery); the NotifyMembers params for it.
    """
    if kind == "new_message":
        sender = await factories.user(conn, name="sender")
        await factories.member(conn, gid, sender)
        await factories.message(conn, gid, sender)
        return {"group_id": gid, "type": kind, "sender_id": sender, "friend_id": None}
    if kind == "new_prompt":
        await factories.prompt(conn, gid, datetime.date(2026, 11, 27))
        return {"group_id": gid, "type": kind, "sender_id": None, "friend_id": None}
    friend = await factories.user(conn, name="friend")
    async with conn.transaction():
        await factories.member(conn, gid, users["joined_earlier_in_the_friends_transaction"])
        await conn.execute(
            "INSERT INTO public.group_members (group_id, user_id, joined_at)"
            " VALUES (%(g)s, %(friend)s, now()), (%(g)s, %(with)s, now()),"
            "        (%(g)s, %(old)s, now() - interval '30 days')",
            {
                "g": gid,
                "friend": friend,
                "with": users["joined_with_the_friend"],
                "old": users["imported_with_the_friend_but_joined_long_ago"],
            },
        )
    return {"group_id": gid, "type": kind, "sender_id": None, "friend_id": friend}


@pytest.mark.parametrize("kind", ["new_message", "friend_joined", "new_prompt"])
async def test_the_group_delivery_and_the_fan_out_notify_the_same_members(conn, kind):
    gid, users = await _arrange(conn)
    fan_out = await _event(conn, kind, gid, users)
    by_id = {user_id: role for role, user_id in users.items()}

    cur = await conn.execute(
        "SELECT id, params FROM broseph.job_records"
        " WHERE job_type = 'DeliverGroupEvent' AND params ->> 'type' = %s"
        "   AND (%s::text IS NULL OR params ->> 'friend_id' = %s::text)",
        (kind, fan_out["friend_id"], fan_out["friend_id"]),
    )
    [job] = await cur.fetchall()
    params = job["params"]
    decided = await sql.rows(
        conn,
        "group_event_members",
        {
            "group_id": gid,
            "type": kind,
            "prompt_id": params.get("prompt_id"),
            "friend_id": params.get("friend_id"),
            "record_id": job["id"],
            "quiet_key": "none",
        },
    )
    # new_message: members with messages from others they have not heard about (not the sender).
    group = {
        by_id.get(r["user_id"], "?") for r in decided if r["message_count"] or kind != "new_message"
    }
    rows = await sql.rows(conn, "notify_members_recipients", fan_out)
    worker = {by_id.get(row["user_id"], "?") for row in rows}

    expected = {role for role, notified in ROLES.items() if notified.get(kind)}
    assert group == expected
    assert worker == expected


async def test_a_friend_who_has_left_again_is_announced_to_nobody(conn):
    gid, users = await _arrange(conn)
    fan_out = await _event(conn, "friend_joined", gid, users)
    assert await sql.rows(conn, "notify_members_recipients", fan_out)
    await conn.execute(
        "DELETE FROM public.group_members WHERE group_id = %s AND user_id = %s",
        (gid, fan_out["friend_id"]),
    )
    assert await sql.rows(conn, "notify_members_recipients", fan_out) == []
