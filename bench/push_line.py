"""
The push line of the wave benchmark (bench/wave.py): raw firebase-admin `send_each_async` of the
wave's messages to the FCM stand-in — no database, no queue — at the wave's concurrency.

One process per wave worker process; each sends its share of the groups, one `send_each_async`
of the group's messages (one per member's device, the shape the wave's DeliverGroupEvent sends)
per group, `--concurrency` groups at a time. It builds its app and messages, prints `ready`,
waits for a line on stdin (the bench starts every process at once), sends, prints `done`.

    python -m bench.push_line --fcm-url URL --groups 500 --members 6 --concurrency 10
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from typing import Annotated, Any

import firebase_admin
import google.oauth2.credentials
import typer
from firebase_admin import messaging

from broseph.providers import push_fcm

PROJECT_ID = "broseph-bench"


def messages(group: int, members: int, tag: str) -> list[Any]:
    """
    One group's messages: the wave's new_prompt push, to each member's fid.
    """
    group_id = str(uuid.uuid4())
    collapse = f"group-{group_id}"
    return [
        messaging.Message(
            fid=f"fid-line-{tag}-{group}-{member}",
            notification=messaging.Notification(title=f"New prompt in Wave {group}", body="?"),
            data={
                "type": "new_prompt",
                "notification_id": str(uuid.uuid4()),
                "group_id": group_id,
                "prompt_id": str(uuid.uuid4()),
            },
            android=messaging.AndroidConfig(collapse_key=collapse),
            apns=messaging.APNSConfig(headers={"apns-collapse-id": collapse}),
        )
        for member in range(members)
    ]


async def send_all(app: Any, batches: list[list[Any]], concurrency: int) -> int:
    """
    Every batch through one send_each_async, `concurrency` at a time; the failures.
    """
    limit = asyncio.Semaphore(concurrency)
    failures = 0

    async def one(batch: list[Any]) -> None:
        nonlocal failures
        async with limit:
            response = await messaging.send_each_async(batch, app=app)
            failures += response.failure_count

    await asyncio.gather(*(one(b) for b in batches))
    return failures


def main(
    fcm_url: Annotated[str, typer.Option(help="The FCM stand-in.")],
    groups: Annotated[int, typer.Option(help="Groups this process sends.")],
    members: Annotated[int, typer.Option(help="Messages per group.")] = 6,
    concurrency: Annotated[int, typer.Option(help="Groups in flight at once.")] = 10,
    tag: Annotated[str, typer.Option(help="Tells this process's devices apart.")] = "0",
) -> None:
    """
    Send the push line's share, started by a line on stdin.
    """
    app = firebase_admin.initialize_app(
        google.oauth2.credentials.Credentials(token="bench"),  # type: ignore[no-untyped-call]
        {"projectId": PROJECT_ID},
        name=f"push-line-{tag}",
    )
    # firebase-admin has no endpoint option: the adapter's one hook points it at the stand-in.
    push_fcm._MessagingHooks(app).point_at(fcm_url, PROJECT_ID)
    batches = [messages(g, members, tag) for g in range(groups)]

    async def run() -> int:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        return await send_all(app, batches, concurrency)

    failures = asyncio.run(run())
    print(f"done {failures}", flush=True)


if __name__ == "__main__":
    typer.run(main)
