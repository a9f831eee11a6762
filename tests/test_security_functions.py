"""
Our functions pin their search_path: a client's session (temporary objects first, by default)
cannot change what a function of ours reads. And a bad value already stored — by a past exploit,
or in an app-owned table without our CHECKs — does not stop a periodic tick for everybody.
On plain PostgreSQL and on a Supabase-like database.
"""

from __future__ import annotations

import datetime
import re

import psycopg
import pytest

from broseph import services
from broseph.jobs import generate_prompt, process_engagement, send_notification
from tests import factories
from tests.conftest import wait_until
from tests.profiles import as_client

UTC = datetime.UTC


@pytest.fixture
def db_url(profile_db_url: str) -> str:
    """
    Every test of this module runs on both profiles.
    """
    return profile_db_url


async def test_a_temporary_view_cannot_smuggle_a_time_zone_past_the_check(conn):
    me = await factories.user(conn)
    with pytest.raises(psycopg.errors.CheckViolation, match="time_zone"):
        async with conn.transaction():
            await as_client(conn, "authenticated", me)
            # The temporary schema is searched before pg_catalog unless a function pins its
            # search_path with pg_temp last.
            await conn.execute(
                "CREATE TEMP VIEW pg_timezone_names AS"
                " SELECT 'Mars/Olympus'::text AS name, 'MOT'::text AS abbrev,"
                " interval '0' AS utc_offset, false AS is_dst"
            )
            await conn.execute(
                "UPDATE public.profiles SET time_zone = 'Mars/Olympus' WHERE id = %s", (me,)
            )
    cur = await conn.execute("SELECT time_zone FROM public.profiles WHERE id = %s", (me,))
    assert (await cur.fetchone())["time_zone"] == "UTC"


# Functions that are ours: everything in schema broseph, the auth stand-ins we created (on
# Supabase, auth.* belongs to Supabase's auth admin) and any function of ours in public.
OURS = """
SELECT format('%I.%I(%s)', n.nspname, p.proname, oidvectortypes(p.proargtypes)) AS function,
       p.prosrc AS source,
       (SELECT c FROM unnest(p.proconfig) AS c WHERE c LIKE 'search\\_path=%') AS search_path
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE (n.nspname = 'broseph'
        OR (n.nspname = 'auth' AND p.proowner = current_user::regrole)
        OR (n.nspname = 'public' AND p.proname NOT LIKE 'procrastinate\\_%'))
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
 ORDER BY 1
"""


async def test_every_function_of_ours_pins_its_search_path_with_pg_temp_last(conn):
    cur = await conn.execute(OURS)
    functions = await cur.fetchall()
    assert len(functions) > 20
    unpinned = [
        (f["function"], f["search_path"])
        for f in functions
        if not re.fullmatch(r"search_path=pg_catalog(, public)?, pg_temp", f["search_path"] or "")
    ]
    assert unpinned == []


async def test_no_function_of_ours_names_a_catalog_relation_unqualified(conn):
    cur = await conn.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = 'pg_catalog'::regnamespace"
        " AND relkind IN ('r', 'v', 'm')"
    )
    catalog = {r["relname"] for r in await cur.fetchall()}
    assert "pg_timezone_names" in catalog
    cur = await conn.execute(OURS)
    unqualified = sorted(
        (f["function"], name)
        for f in await cur.fetchall()
        for name in re.findall(r"(?<![\w.])(pg_[a-z_]+)\b(?!\s*\()", f["source"])
        if name in catalog
    )
    assert unqualified == []


async def _store_unusable_time_zones(conn) -> tuple:
    """
    A user and a group whose stored time zone PostgreSQL does not know: what the exploit left
    behind, or what an app-owned table without our CHECK may hold.
    """
    gid = await factories.group(conn, name="Mars")
    good = await factories.group(conn, name="Earth")
    marsian, earthling = await factories.user(conn, name="M"), await factories.user(conn, name="E")
    for group_id, uid in ((gid, marsian), (good, earthling)):
        await factories.member(conn, group_id, uid)
    await conn.execute(
        """
        ALTER TABLE public.profiles DROP CONSTRAINT profiles_time_zone_check;
        ALTER TABLE public.groups DROP CONSTRAINT groups_time_zone_check;
        """
    )
    await conn.execute(
        "UPDATE public.profiles SET time_zone = 'Mars/Olympus' WHERE id = %s", (marsian,)
    )
    await conn.execute("UPDATE public.groups SET time_zone = 'Mars/Olympus' WHERE id = %s", (gid,))
    return gid, good, marsian, earthling


async def test_a_stored_unknown_time_zone_stops_no_tick(conn, app):
    gid, good, marsian, earthling = await _store_unusable_time_zones(conn)
    svc = services.for_app(app)
    day = datetime.datetime.now(UTC).date()
    for group_id in (gid, good):
        pid = await factories.prompt(conn, group_id, day)
        await conn.execute(
            "UPDATE public.prompts SET created_at = %s WHERE id = %s",
            (datetime.datetime.combine(day, datetime.time(8), UTC), pid),
        )
    tick = int(datetime.datetime.combine(day, datetime.time(21), UTC).timestamp())

    # Unknown zones are read as UTC: everyone is reminded at 20:00 UTC, nobody's tick fails.
    assert await send_notification.remind(svc, tick) == 2
    cur = await conn.execute(
        "SELECT params ->> 'user_id' AS uid FROM broseph.job_records"
        " WHERE params ->> 'type' = 'prompt_reminder'"
    )
    assert {r["uid"] for r in await cur.fetchall()} == {str(marsian), str(earthling)}
    assert await process_engagement.nightly(svc, tick) == 2
    await conn.execute("DELETE FROM public.prompts")
    assert await generate_prompt.fan_out(svc, tick) == 2
    cur = await conn.execute(
        "SELECT DISTINCT params ->> 'local_date' AS day FROM broseph.job_records"
        " WHERE job_type = 'GeneratePrompt'"
    )
    assert [r["day"] for r in await cur.fetchall()] == [day.isoformat()]


async def test_jobs_for_a_group_with_an_unknown_time_zone_complete(conn, app, start_worker):
    gid, _good, marsian, _earthling = await _store_unusable_time_zones(conn)
    await factories.message(conn, gid, marsian)
    await conn.execute("UPDATE procrastinate_jobs SET scheduled_at = now()")  # skip debounce
    await conn.execute(
        "SELECT broseph.enqueue('GeneratePrompt', jsonb_build_object('group_id', %s::text))",
        (gid,),
    )
    await start_worker()

    async def settled() -> bool:
        cur = await conn.execute(
            "SELECT count(*) AS open FROM broseph.job_records"
            " WHERE status NOT IN ('completed', 'failed')"
        )
        return (await cur.fetchone())["open"] == 0

    await wait_until(settled, within=30)
    cur = await conn.execute(
        "SELECT job_type, status, last_error FROM broseph.job_records ORDER BY job_type"
    )
    rows = await cur.fetchall()
    # Its prompt, its analytics, and the group's deliveries (the message, the new prompt) to its
    # member of an unknown zone (no device: skipped, read as UTC for quiet hours).
    assert {r["job_type"] for r in rows} == {
        "GeneratePrompt",
        "ProcessEngagement",
        "DeliverGroupEvent",
    }
    assert all(r["status"] == "completed" for r in rows), rows
    cur = await conn.execute(
        "SELECT type, status, reason FROM public.notifications WHERE user_id = %s ORDER BY type",
        (marsian,),
    )
    assert [tuple(r.values()) for r in await cur.fetchall()] == [
        ("new_prompt", "skipped", "no live devices")
    ]
