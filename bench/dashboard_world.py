"""
The world of benchmark (10): N job records with their queue rows and events, loaded in bulk.

Records are spread over the 14 days of retention in every status, over N/100 groups and N/10
users, plus one 08:00 GeneratePrompt wave of up to 10,000 — so that what a dashboard page shows
(a group's 100 records, a user's ten, the wave's 200 failures, 20 running jobs) is the same in
a world of 1,000 records and in one of 1,000,000; only the tables' size differs.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from bench import database
from broseph.ops import inspect

# Statements separated by blank lines. Triggers are off for the load (session_replication_role):
# the events are written below, in bulk, as the triggers would have written them one by one.
_LOAD = """
SET session_replication_role = replica;

CREATE TEMP TABLE bench_world ON COMMIT DROP AS
WITH spec AS (
    SELECT i,
           i > %(n)s - %(wave)s AS in_wave,
           CASE WHEN i > %(n)s - %(wave)s THEN 'GeneratePrompt'
                WHEN i %% 20 < 2 THEN 'GeneratePrompt'
                WHEN i %% 20 < 14 THEN 'SendNotification'
                WHEN i %% 20 < 19 THEN 'ProcessEngagement'
                ELSE 'NotifyMembers' END AS job_type,
           md5('g' || (i %% %(groups)s))::uuid AS group_id,
           md5('u' || (i %% %(users)s))::uuid AS user_id
      FROM generate_series(1, %(n)s) AS i
)
SELECT s.i, gen_random_uuid() AS id, s.job_type, s.group_id, s.user_id,
       CASE WHEN s.in_wave
                THEN %(wave_at)s::timestamptz + (s.i %% 600) * interval '100 ms'
            ELSE %(now)s::timestamptz - interval '14 days'
                 + (s.i::float8 / %(n)s) * (interval '14 days' - interval '1 minute')
       END AS created_at,
       CASE WHEN s.in_wave THEN CASE WHEN s.i <= %(n)s - %(wave)s + %(wave_failed)s
                                     THEN 'failed' ELSE 'completed' END
            WHEN s.i > %(n)s - %(wave)s - %(running)s THEN 'processing'
            WHEN s.i > %(n)s - %(wave)s - %(active)s
                THEN (ARRAY['pending', 'pending', 'pending', 'pending', 'pending', 'pending',
                            'pending', 'retrying', 'pending', 'pending'])[s.i %% 10 + 1]
            WHEN (s.i::bigint * 7919) %% 1000 < 25 THEN 'failed'
            WHEN (s.i::bigint * 7919) %% 1000 < 35 THEN 'cancelled'
            ELSE 'completed' END AS status
  FROM spec s;

INSERT INTO broseph.job_records
    (id, job_type, params, status, progress, attempts, last_error, result, idempotency_key,
     source, procrastinate_job_id, created_at, started_at, finished_at, updated_at)
SELECT w.id, w.job_type,
       CASE w.job_type
           WHEN 'SendNotification' THEN jsonb_build_object('user_id', w.user_id, 'type',
               'new_message', 'data', jsonb_build_object('group_id', w.group_id))
           WHEN 'NotifyMembers' THEN jsonb_build_object('group_id', w.group_id, 'type',
               'new_prompt')
           ELSE jsonb_build_object('group_id', w.group_id, 'local_date',
               to_char(w.created_at, 'YYYY-MM-DD')) END,
       w.status, CASE WHEN w.status = 'completed' THEN 100 ELSE 0 END,
       CASE w.status WHEN 'pending' THEN 0 WHEN 'failed' THEN 5 WHEN 'retrying' THEN 2 ELSE 1 END,
       CASE WHEN w.status IN ('failed', 'retrying')
            THEN 'RuntimeError: bench failure ' || w.i %% 7 END,
       CASE WHEN w.status = 'completed' THEN '{"ok": true}'::jsonb END,
       CASE WHEN w.job_type = 'GeneratePrompt' THEN 'prompt:' || w.group_id || ':' || w.i END,
       'bench', w.i, w.created_at,
       CASE WHEN w.status <> 'pending' THEN w.created_at + interval '1 s' END,
       CASE WHEN w.status IN ('completed', 'failed', 'cancelled')
            THEN w.created_at + interval '2 s' END,
       w.created_at + interval '2 s'
  FROM bench_world w;

INSERT INTO procrastinate_jobs (id, queue_name, task_name, args, status, attempts, scheduled_at)
SELECT w.i, t.queue, t.task_name, jsonb_build_object('record_id', w.id),
       (CASE w.status WHEN 'pending' THEN 'todo' WHEN 'retrying' THEN 'todo'
            WHEN 'processing' THEN 'doing' WHEN 'completed' THEN 'succeeded'
            WHEN 'failed' THEN 'failed' ELSE 'cancelled' END)::procrastinate_job_status,
       CASE w.status WHEN 'pending' THEN 0 WHEN 'failed' THEN 5 WHEN 'retrying' THEN 1 ELSE 1 END,
       CASE WHEN w.status = 'retrying' THEN %(now)s::timestamptz + interval '5 min' END
  FROM bench_world w JOIN broseph.job_types t ON t.name = w.job_type;

INSERT INTO procrastinate_events (job_id, type, at)
SELECT w.i, e.type::procrastinate_job_event_type, w.created_at + e.after
  FROM bench_world w
 CROSS JOIN LATERAL (VALUES
        ('deferred', interval '0 s', true),
        ('started', interval '1 s', w.status NOT IN ('pending', 'cancelled')),
        ('deferred_for_retry', interval '2 s', w.status = 'retrying'),
        ('succeeded', interval '2 s', w.status = 'completed'),
        ('failed', interval '2 s', w.status = 'failed'),
        ('cancelled', interval '2 s', w.status = 'cancelled')
     ) AS e (type, after, happened)
 WHERE e.happened
 ORDER BY w.i, e.after;

SELECT setval(pg_get_serial_sequence('procrastinate_jobs', 'id'), %(n)s);

INSERT INTO procrastinate_workers (last_heartbeat) VALUES (%(now)s), (%(now)s);

SET session_replication_role = origin;
"""


@dataclass(frozen=True)
class World:
    n: int
    wave_at: datetime.datetime
    # A failed record one week back (the job page), and the cursor of a page there.
    middle: inspect.Cursor
    failed: uuid.UUID
    group: uuid.UUID
    user: uuid.UUID


async def _latest(
    conn: psycopg.AsyncConnection[Any], columns: str, where: str, before: datetime.datetime
) -> Any:
    """
    The newest record created before `before` for which `where` holds (the world has one).
    """
    return await database.one(
        conn,
        f"SELECT {columns} FROM broseph.job_records WHERE {where} AND created_at < %s"
        " ORDER BY created_at DESC, id DESC LIMIT 1",
        (before,),
    )


async def load(url: str, n: int) -> World:
    """
    N records in every state, the wave included; VACUUM ANALYZE after (what autovacuum does).
    """
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
        now: datetime.datetime = (await database.one(conn, "SELECT now() AS now"))["now"]
        wave_at = now.replace(hour=8, minute=0, second=0, microsecond=0)
        if wave_at > now - datetime.timedelta(minutes=2):
            wave_at -= datetime.timedelta(days=1)
        # What a page shows is the same in every world (a group's 100 records, a user's ten,
        # 200 failures in the wave, 20 running jobs): only the table's size differs.
        wave = min(10_000, n // 10)
        params = {
            "n": n, "now": now, "wave_at": wave_at, "wave": wave,
            "wave_failed": min(200, wave // 2), "active": min(2_000, n // 5), "running": 20,
            "groups": max(1, n // 100), "users": max(1, n // 10),
        }  # fmt: skip
        for statement in _LOAD.split(";\n\n"):
            await conn.execute(statement.strip().removesuffix(";").encode(), params)
        await conn.commit()
        week_ago = now - datetime.timedelta(days=7)
        middle = await _latest(conn, "created_at, id", "true", week_ago)
        failed = await _latest(
            conn, "id, user_id", "status = 'failed' AND job_type = 'SendNotification'", week_ago
        )
        group = await _latest(conn, "group_id", "job_type = 'ProcessEngagement'", week_ago)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for table in ("broseph.job_records", "procrastinate_jobs", "procrastinate_events"):
            await conn.execute(f"VACUUM (ANALYZE) {table}".encode())
    return World(
        n=n,
        wave_at=wave_at,
        middle=inspect.Cursor(middle["created_at"], middle["id"]),
        failed=failed["id"],
        group=group["group_id"],
        user=failed["user_id"],
    )
