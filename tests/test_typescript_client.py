"""
The TypeScript client (clients/typescript, `@broseph/jobs`), exercised for real: its own tests run
with node-postgres against a migrated database served by a worker; `tsc` compiles it with its
type tests (wrong fields must NOT compile); its generated types match the payload models; and the
RPC wrappers it calls through Supabase are executable by service_role only.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from broseph import migrate
from tests import factories, pg, readme_support, security_support

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "clients" / "typescript"
TSC = CLIENT / "node_modules" / ".bin" / "tsc"
TYPE_TESTS = CLIENT / "type-tests" / "fields.ts"
RPC_FUNCTIONS = (
    "public.broseph_enqueue(text, jsonb, text, timestamptz, integer, text, jsonb, text, text)",
    "public.broseph_enqueue_many(text, jsonb, text[], timestamptz, integer, text, jsonb, text,"
    " text)",
)


@pytest.fixture(scope="module")
def node_modules() -> Path:
    if not TSC.exists():
        raise AssertionError(
            "clients/typescript has no node_modules: run `npm ci` in clients/typescript"
        )
    return CLIENT / "node_modules"


def node_url(conninfo: str) -> str:
    """
    A libpq conninfo (what tests.pg hands out) as the URL node-postgres takes.
    """
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    user = urllib.parse.quote(str(params.get("user", "postgres")), safe="")
    password = params.get("password")
    auth = f"{user}:{urllib.parse.quote(str(password), safe='')}" if password else user
    host = str(params.get("host", "127.0.0.1"))
    dbname = urllib.parse.quote(str(params["dbname"]), safe="")
    if host.startswith("/"):  # a unix socket directory (the embedded server)
        return f"postgresql://{auth}@/{dbname}?host={urllib.parse.quote(host, safe='')}"
    return f"postgresql://{auth}@{host}:{params.get('port', 5432)}/{dbname}"


def _tsc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TSC), *args], cwd=CLIENT, capture_output=True, text=True, timeout=300, check=False
    )


def _summary(tap: str) -> dict[str, int]:
    """
    The totals at the end of `node --test`'s output ("# pass 60", "# fail 0", …).
    """
    return {k: int(v) for k, v in re.findall(r"^# (\w+) (\d+)$", tap, re.MULTILINE)}


# --- the package's own tests, against a real database and worker ------------------------------


async def test_package_tests_pass_against_a_real_database_and_worker(
    node_modules: Path, db_url: str, start_worker: Any
) -> None:
    # The tests wait for jobs a worker completes (the commit test, the RPC test).
    await start_worker()
    process = await asyncio.create_subprocess_exec(
        "npm",
        "test",
        cwd=CLIENT,
        env={**os.environ, "DATABASE_URL": node_url(db_url)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=600)
    output = out.decode()
    failures = "\n".join(line for line in output.splitlines() if "not ok" in line)
    assert process.returncode == 0, f"npm test failed:\n{failures}\n{output[-4000:]}"
    totals = _summary(output)
    assert totals.get("fail") == 0 and totals.get("cancelled") == 0, totals
    # Nothing skipped or left as todo, and the suite really ran (a lower bound, not a count).
    assert totals.get("skipped") == 0 and totals.get("todo") == 0, totals
    assert totals.get("pass", 0) >= 50, totals
    for name in ("ROLLBACK leaves nothing", "COMMIT makes a record that a worker completes"):
        assert re.search(rf"^\s*ok \d+ - .*{name}", output, re.MULTILINE), name


# --- types: the package compiles, wrong fields do not ------------------------------------------


def test_the_package_and_its_type_tests_compile(node_modules: Path) -> None:
    done = _tsc("--noEmit", "-p", "tsconfig.json")
    # An @ts-expect-error line that started to compile fails here as an unused directive.
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def scratch_dir() -> Iterator[Path]:
    """
    A directory inside the package (so its node_modules and ../src resolve), removed after.
    """
    path = Path(tempfile.mkdtemp(prefix=".type-check-", dir=CLIENT))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_every_expected_type_error_is_an_error_without_its_directive(
    node_modules: Path, scratch_dir: Path
) -> None:
    # Guards the type test itself: were fields.ts left out of the compilation, the check above
    # would pass without checking anything.
    lines = TYPE_TESTS.read_text(encoding="utf-8").splitlines()
    expected = {i + 2 for i, line in enumerate(lines) if line.strip().startswith("// @ts-expect")}
    assert len(expected) >= 10
    stripped = [re.sub(r"// @ts-expect-error.*", "//", line) for line in lines]
    (scratch_dir / "fields.ts").write_text("\n".join(stripped) + "\n", encoding="utf-8")
    (scratch_dir / "tsconfig.json").write_text(
        json.dumps({"extends": "../tsconfig.json", "include": ["fields.ts"]}), encoding="utf-8"
    )
    done = _tsc("--noEmit", "-p", str(scratch_dir / "tsconfig.json"))
    assert done.returncode != 0
    errors = {int(n) for n in re.findall(r"fields\.ts\((\d+),\d+\): error", done.stdout)}
    assert errors == expected, done.stdout


# --- the generated types are those of today's payload models -----------------------------------


def test_generated_schemas_and_types_match_the_payload_models(
    node_modules: Path, tmp_path: Path
) -> None:
    # What CI's drift check (`.ci/run`: scripts/generate.sh, then git diff) checks, here too.
    subprocess.run(
        [sys.executable, "-m", "broseph.schema", "--out", str(tmp_path / "schema")],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            "node",
            str(CLIENT / "scripts" / "generate.mjs"),
            "--schema",
            str(tmp_path / "schema"),
            "--out",
            str(tmp_path / "jobs.ts"),
        ],
        check=True,
        capture_output=True,
    )
    committed = sorted(p.name for p in (CLIENT / "schema").glob("*.json"))
    assert sorted(p.name for p in (tmp_path / "schema").glob("*.json")) == committed
    stale = "is stale: run `npm run generate` in clients/typescript and commit the result"
    for name in committed:
        fresh = (tmp_path / "schema" / name).read_text(encoding="utf-8")
        assert fresh == (CLIENT / "schema" / name).read_text(encoding="utf-8"), f"{name} {stale}"
    generated = CLIENT / "src" / "generated" / "jobs.ts"
    assert (tmp_path / "jobs.ts").read_text(encoding="utf-8") == generated.read_text(
        encoding="utf-8"
    ), f"src/generated/jobs.ts {stale}"


# --- the RPC wrappers: service_role only, on both profiles --------------------------------------

# Supabase's init script grants every function created later in public to the client roles
# (repository supabase/postgres, migrations/db/init-scripts/00000000000000-initial-schema.sql:
# `alter default privileges in schema public grant all on functions to … anon, authenticated`);
# a database prepared that way before migrating shows whether the migration's REVOKEs hold.
# The client roles are the cluster's: migrating the session's template (profile_db asks for
# template_db first) created them, as migrations/0001_supabase_compat.sql does.
_SUPABASE_DEFAULTS = """
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT ALL ON TABLES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
"""


@pytest.fixture(params=["plain", "supabase-like"])
def profile_db(request: pytest.FixtureRequest, admin_url: str, template_db: str) -> Iterator[str]:
    if request.param == "plain":
        name = pg.create_database(admin_url, template=template_db)
    else:
        name = pg.create_database(admin_url, prefix="bsupa")
        with psycopg.connect(pg.with_dbname(admin_url, name), autocommit=True) as conn:
            conn.execute(_SUPABASE_DEFAULTS)
        asyncio.run(migrate.migrate(pg.with_dbname(admin_url, name)))
    yield pg.with_dbname(admin_url, name)
    pg.drop_database(admin_url, name)


def test_rpc_wrappers_are_executable_by_service_role_only(profile_db: str) -> None:
    with psycopg.connect(profile_db, autocommit=True) as conn:
        for function in RPC_FUNCTIONS:
            row = conn.execute(
                "SELECT p.prosecdef, p.proconfig, p.proacl::text[] AS acl,"
                " has_function_privilege('anon', %(f)s::regprocedure, 'EXECUTE') AS anon,"
                " has_function_privilege('authenticated', %(f)s::regprocedure, 'EXECUTE') AS auth,"
                " has_function_privilege('service_role', %(f)s::regprocedure, 'EXECUTE') AS svc"
                " FROM pg_proc p WHERE p.oid = %(f)s::regprocedure",
                {"f": function},
            ).fetchone()
            assert row is not None
            secdef, config, acl, anon, authenticated, service_role = row
            assert secdef, f"{function} is not SECURITY DEFINER"
            assert config == ["search_path=pg_catalog, pg_temp"], config
            assert (anon, authenticated, service_role) == (False, False, True), (function, acl)
            # No grant to PUBLIC (an ACL entry "=X/owner") either.
            assert not any(entry.startswith("=") for entry in acl), acl

        for role in ("anon", "authenticated"):
            for call, args in [
                (
                    "SELECT public.broseph_enqueue('GeneratePrompt', %s::jsonb)",
                    ('{"group_id": "6b1d8f53-2d0b-4c8e-9a57-3f9f4c1e2a10"}',),
                ),
                (
                    "SELECT public.broseph_enqueue_many('GeneratePrompt', %s::jsonb)",
                    ('[{"group_id": "6b1d8f53-2d0b-4c8e-9a57-3f9f4c1e2a10"}]',),
                ),
            ]:
                with conn.transaction(force_rollback=True):
                    conn.execute(f"SET LOCAL ROLE {role}")
                    with pytest.raises(psycopg.errors.InsufficientPrivilege):
                        conn.execute(call, args)
        with conn.transaction(force_rollback=True):
            conn.execute("SET LOCAL ROLE service_role")
            row = conn.execute(
                "SELECT public.broseph_enqueue('GeneratePrompt', %s::jsonb)",
                ('{"group_id": "6b1d8f53-2d0b-4c8e-9a57-3f9f4c1e2a10"}',),
            ).fetchone()
            assert row is not None and row[0] is not None
        assert conn.execute("SELECT count(*) FROM broseph.job_records").fetchone() == (0,)


def test_rpc_wrapper_errors_keep_the_contract_s_message_and_code(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InvalidParameterValue) as raised:
            conn.execute(
                "SELECT public.broseph_enqueue('ProcessEngagement', %s::jsonb)",
                ('{"local_date": "2026-03-01"}',),
            )
        assert str(raised.value.diag.message_primary) == (
            'ProcessEngagement: missing field "group_id"'
        )
        with pytest.raises(psycopg.errors.InvalidParameterValue) as raised:
            conn.execute(
                "SELECT public.broseph_enqueue_many('ProcessEngagement', %s::jsonb)",
                ('{"group_id": "6b1d8f53-2d0b-4c8e-9a57-3f9f4c1e2a10"}',),
            )
        diag = raised.value.diag
        assert diag.column_name == "params"
        assert diag.message_detail == "column: params"
        assert "params must be a JSON array of objects, got object" in str(diag.message_primary)


# --- the README's TypeScript examples compile and run as written --------------------------------

# Calls every function the README's ```ts blocks export, with a seeded world; the blocks import
# '@broseph/jobs' as an application would (the package resolves its own name to dist/). The job
# status examples run on real supabase-js, signed in as a member (a JWT the stand-ins decode but
# do not verify), against the PostgREST and Realtime stand-ins of clients/typescript/test.
_README_DRIVER = """
import pg from 'pg';
import WebSocket from 'ws';
import { PostgrestClient } from '@supabase/postgrest-js';
import { createClient } from '@supabase/supabase-js';
import { startPostgrest } from '../test/postgrest-standin.js';
import { attachRealtime } from '../test/realtime-standin.js';
/*IMPORTS*/

const modules: Record<string, Record<string, unknown>> = { /*MODULES*/ };
const url = process.env['DATABASE_URL']!;
const [groupId, senderId] = JSON.parse(process.env['README_WORLD']!) as [string, string];
const pool = new pg.Pool({ connectionString: url });
const standin = await startPostgrest(url);
const realtime = attachRealtime(standin.server, url);
const supabase = new PostgrestClient(standin.url, {
  headers: { Authorization: 'Bearer service_role' },
});
const part = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
const claims = { sub: senderId, role: 'authenticated' };
const memberJwt = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}.x`;
const member = createClient(standin.url, 'anon-key', {
  accessToken: async () => memberJwt,
  realtime: { transport: WebSocket as any }, // Node 20 has no WebSocket of its own
});
const results: Record<string, unknown> = {};

// Subscribe, then write the job's progress as the worker's reporter does (report_progress in
// broseph/queries/records.sql, for a record it has started): resolve with what arrives.
async function watched(f: any): Promise<unknown> {
  const jobId = results['postMessage'] as string;
  await pool.query(
    "UPDATE broseph.job_records SET status = 'processing', attempts = 1, started_at = now()" +
      " WHERE id = $1",
    [jobId],
  );
  const arrived = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no change arrived within 15 s')), 15000);
    const channel = f(member, jobId, (job: unknown) => {
      clearTimeout(timer);
      void member.removeChannel(channel).then(() => resolve(job));
    });
    const joined = setInterval(async () => {
      if (channel.state !== 'joined') return;
      clearInterval(joined);
      await pool.query(
        "UPDATE broseph.job_records SET progress = 40, progress_message = 'halfway there'," +
          " updated_at = now() WHERE id = $1 AND status = 'processing'",
        [jobId],
      );
    }, 20);
  });
  return { job: await arrived, joins: realtime.joins };
}

const calls: Record<string, (f: any) => Promise<unknown>> = {
  postMessage: (f) => f(pool, groupId, senderId, 'hello from the README'),
  engagementFor: (f) => f(pool, [groupId], '2026-03-01'),
  schedulePrompt: (f) => f(supabase, groupId, '2026-03-01'),
  groupJobs: (f) => f(member, groupId),
  watchJob: watched,
};
try {
  for (const [block, exported] of Object.entries(modules)) {
    for (const [name, fn] of Object.entries(exported)) {
      const call = calls[name];
      if (!call) throw new Error(`${block} exports ${name}: call it in test_typescript_client.py`);
      results[name] = await call(fn);
    }
  }
} finally {
  await member.removeAllChannels();
  await realtime.close();
  await standin.close();
  await pool.end();
}
console.log(JSON.stringify(results));
"""


def test_readme_typescript_examples_compile_and_run(
    node_modules: Path, db_url: str, scratch_dir: Path
) -> None:
    ts_blocks = readme_support.blocks("ts")
    assert len(ts_blocks) >= 2
    build = subprocess.run(
        ["npm", "run", "build"], cwd=CLIENT, capture_output=True, text=True, check=False
    )
    assert build.returncode == 0, build.stdout + build.stderr
    names = []
    for block in ts_blocks:
        name = f"readme_{block.line}"
        (scratch_dir / f"{name}.ts").write_text(block.code + "\n", encoding="utf-8")
        names.append(name)
    driver = _README_DRIVER.replace(
        "/*IMPORTS*/", "\n".join(f"import * as {n} from './{n}.js';" for n in names)
    ).replace("/*MODULES*/", ", ".join(names))
    (scratch_dir / "driver.ts").write_text(driver, encoding="utf-8")
    (scratch_dir / "tsconfig.json").write_text(
        json.dumps(
            {
                "extends": "../tsconfig.json",
                "compilerOptions": {
                    "noEmit": False,
                    "declaration": False,
                    "sourceMap": False,
                    "rootDir": "..",
                    "outDir": "build",
                },
                "include": ["*.ts"],
            }
        ),
        encoding="utf-8",
    )
    compiled = _tsc("-p", str(scratch_dir / "tsconfig.json"))
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr

    with psycopg.connect(db_url, autocommit=True) as conn:
        group_id, member_id = map(str, factories.group_with_member(conn, "TS", "Ben"))
        run = subprocess.run(
            ["node", str(scratch_dir / "build" / scratch_dir.name / "driver.js")],
            cwd=CLIENT,
            env={
                **os.environ,
                "DATABASE_URL": node_url(db_url),
                "README_WORLD": json.dumps([group_id, member_id]),
            },
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        results = json.loads(run.stdout.strip().splitlines()[-1])
        assert set(results) == {
            "postMessage",
            "engagementFor",
            "schedulePrompt",
            "groupJobs",
            "watchJob",
        }
        ids = [results["postMessage"], *results["engagementFor"], results["schedulePrompt"]]
        rows = conn.execute(
            "SELECT id::text, job_type, source FROM broseph.job_records WHERE id = ANY(%s::uuid[])",
            (ids,),
        ).fetchall()
        assert {r[0] for r in rows} == set(ids)
        assert ("GeneratePrompt", "rpc") in {(r[1], r[2]) for r in rows}
        messages = conn.execute(
            "SELECT count(*) FROM public.messages WHERE body = 'hello from the README'"
        ).fetchone()
        assert messages == (1,)
        _check_job_status_examples(conn, results, group_id)


def _check_job_status_examples(conn: psycopg.Connection[Any], results: Any, group: str) -> None:
    """
    What the README's supabase-js examples got, signed in as a member of the group.
    """
    # groupJobs: the group's jobs, newest first, with the selected columns only.
    expected = conn.execute(
        "SELECT id::text FROM broseph.job_records WHERE group_id = %s ORDER BY created_at DESC",
        (group,),
    ).fetchall()
    listed = results["groupJobs"]
    assert [job["id"] for job in listed] == [row[0] for row in expected] and listed
    assert set(listed[0]) == {
        "id",
        "job_type",
        "status",
        "progress",
        "progress_message",
        "updated_at",
    }
    # watchJob: joined the channel as the README says, and the progress update arrived with the
    # columns a member may read and no others (params, last_error, result never leave).
    (join,) = results["watchJob"]["joins"]
    assert join["topic"] == f"realtime:job-{results['postMessage']}"
    assert join["payload"]["config"]["postgres_changes"] == [
        {
            "event": "UPDATE",
            "schema": "broseph",
            "table": "job_records",
            "filter": f"id=eq.{results['postMessage']}",
        }
    ]
    job = results["watchJob"]["job"]
    assert (job["id"], job["status"], job["progress"], job["progress_message"]) == (
        results["postMessage"],
        "processing",
        40,
        "halfway there",
    )
    assert set(job) == security_support.CLIENT_COLUMNS
