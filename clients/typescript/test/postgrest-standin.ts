// A stand-in for PostgREST's RPC endpoint, enough for the real @supabase/postgrest-js client
// (what supabase.rpc delegates to) to call public functions of the test database.
//
// What it copies from PostgREST: `POST /rpc/<fn>` with the arguments as a JSON object; the role
// from the bearer token (here the token IS the role name, instead of a JWT's `role` claim); one
// transaction per request with `SET LOCAL ROLE`; only the arguments present in the body are
// passed, by name, read through json_to_record with the function's own argument types (so
// omitted ones take their defaults); the result as JSON; errors as {code, message, details,
// hint} with PostgREST's HTTP statuses (no COLUMN: PostgREST does not pass it on).

import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';

const ROLES = new Set(['anon', 'authenticated', 'service_role']);

interface PgError {
  code?: string;
  message: string;
  detail?: string;
  hint?: string;
}

function statusOf(code: string | undefined, role: string): number {
  if (code === '42501') return role === 'anon' ? 401 : 403;
  if (code?.startsWith('22') || code?.startsWith('23')) return 400;
  return 500;
}

async function body(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

async function call(
  db: pg.Client,
  role: string,
  fn: string,
  args: Record<string, unknown>,
): Promise<{ status: number; payload: unknown }> {
  const { rows: params } = await db.query<{ name: string; type: string }>(
    `SELECT a.name, format_type(a.type, NULL) AS type
       FROM pg_proc p,
            unnest(p.proargnames, p.proargtypes::oid[]) WITH ORDINALITY AS a(name, type, ord)
      WHERE p.pronamespace = 'public'::regnamespace AND p.proname = $1::text
      ORDER BY a.ord`,
    [fn],
  );
  const known = new Map(params.map((p) => [p.name, p.type]));
  const given = Object.keys(args);
  if (!params.length || given.some((name) => !known.has(name))) {
    return {
      status: 404,
      payload: {
        code: 'PGRST202',
        message: `Could not find the function public.${fn}(${given.join(', ')}) in the schema cache`,
        details: null,
        hint: null,
      },
    };
  }
  const columns = given.map((name) => `${quoteIdent(name)} ${known.get(name)}`).join(', ');
  const named = given.map((name) => `${quoteIdent(name)} := _.${quoteIdent(name)}`).join(', ');
  const text = `SELECT to_json(public.${quoteIdent(fn)}(${named})) AS result
                  FROM json_to_record($1::json) AS _(${columns})`;
  await db.query('BEGIN');
  try {
    await db.query(`SET LOCAL ROLE ${role}`);
    const { rows } = await db.query<{ result: unknown }>(text, [JSON.stringify(args)]);
    await db.query('COMMIT');
    return { status: 200, payload: rows[0]!.result };
  } catch (error) {
    await db.query('ROLLBACK');
    const e = error as PgError;
    return {
      status: statusOf(e.code, role),
      payload: {
        code: e.code,
        message: e.message,
        details: e.detail ?? null,
        hint: e.hint ?? null,
      },
    };
  }
}

export interface PostgrestStandin {
  url: string;
  /** Requests answered, for asserting that a call did (or did not) reach the server. */
  requests: Array<{ role: string; fn: string; args: Record<string, unknown> }>;
  close(): Promise<void>;
}

export async function startPostgrest(databaseUrl: string): Promise<PostgrestStandin> {
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  const requests: PostgrestStandin['requests'] = [];
  let queue = Promise.resolve(); // one connection: one request at a time
  const server: Server = createServer((request, response) => {
    queue = queue.then(async () => {
      const match = /^\/rpc\/([a-z_][a-z0-9_]*)$/.exec(request.url ?? '');
      const role = /^Bearer (\w+)$/.exec(request.headers.authorization ?? '')?.[1] ?? 'anon';
      let status = 404;
      let payload: unknown = {
        code: 'PGRST125',
        message: 'Invalid path',
        details: null,
        hint: null,
      };
      if (request.method === 'POST' && match && ROLES.has(role)) {
        const args = JSON.parse((await body(request)) || '{}') as Record<string, unknown>;
        requests.push({ role, fn: match[1]!, args });
        ({ status, payload } = await call(db, role, match[1]!, args));
      }
      response.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
      response.end(JSON.stringify(payload));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    async close() {
      await new Promise<void>((resolve, reject) =>
        server.close((e) => (e ? reject(e) : resolve())),
      );
      await db.end();
    },
  };
}
