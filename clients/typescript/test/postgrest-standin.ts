// A stand-in for PostgREST, enough for the real @supabase/postgrest-js client (what supabase.rpc
// and supabase.from delegate to) to call public functions and read public tables and views of
// the test database, with or without supabase-js's `/rest/v1` prefix.
//
// What it copies from PostgREST: `POST /rpc/<fn>` with the arguments as a JSON object;
// `GET /<table or view>?select=a,b&col=eq.value&order=col.desc&limit=n` (plain columns, eq
// filters only) from schema public only; the role from the bearer token — a JWT's `role` claim
// (the JWT is decoded, NOT verified), or the token itself when it is just a role name; one
// transaction per request with `SET LOCAL ROLE` and the JWT's claims in request.jwt.claims (so
// auth.uid() and RLS see the user); only the arguments present in the body are passed, by name,
// read through json_to_record with the function's own argument types (so omitted ones take their
// defaults); the result as JSON; errors as {code, message, details, hint} with PostgREST's HTTP
// statuses (no COLUMN: PostgREST does not pass it on).

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

/** Role and claims of a request: a JWT's payload (unverified), or a bare role name. */
export function claimsOf(authorization: string | undefined): { role: string; claims: Record<string, unknown> } {
  const token = /^Bearer (\S+)$/.exec(authorization ?? '')?.[1] ?? 'anon';
  const parts = token.split('.');
  if (parts.length === 3) {
    const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
    return { role: String(claims['role'] ?? 'anon'), claims };
  }
  return { role: token, claims: { role: token } };
}

const IDENT = /^[a-z_][a-z0-9_]*$/;

function bad(message: string): { status: number; payload: unknown } {
  return { status: 400, payload: { code: 'PGRST100', message, details: null, hint: null } };
}

async function read(
  db: pg.Client,
  role: string,
  claims: Record<string, unknown>,
  relation: string,
  query: URLSearchParams,
): Promise<{ status: number; payload: unknown }> {
  const { rows: found } = await db.query(`SELECT to_regclass($1) IS NOT NULL AS ok`, [
    `public.${quoteIdent(relation)}`,
  ]);
  if (!found[0]?.ok) {
    return {
      status: 404,
      payload: {
        code: 'PGRST205',
        message: `Could not find the table 'public.${relation}' in the schema cache`,
        details: null,
        hint: null,
      },
    };
  }
  const select = (query.get('select') ?? '*').split(',').filter(Boolean);
  if (!select.every((c) => c === '*' || IDENT.test(c))) return bad(`unsupported select ${query.get('select')}`);
  const where: string[] = [];
  const values: string[] = [];
  let order = '';
  let limit = '';
  for (const [key, value] of query) {
    if (key === 'select') continue;
    if (key === 'order') {
      const [column, direction = 'asc'] = value.split('.');
      if (!IDENT.test(column ?? '') || !['asc', 'desc'].includes(direction)) return bad(`unsupported order ${value}`);
      order = ` ORDER BY ${quoteIdent(column!)} ${direction.toUpperCase()}`;
    } else if (key === 'limit') {
      if (!/^\d+$/.test(value)) return bad(`unsupported limit ${value}`);
      limit = ` LIMIT ${value}`;
    } else if (IDENT.test(key) && value.startsWith('eq.')) {
      values.push(value.slice(3));
      where.push(`${quoteIdent(key)} = $${values.length}`);
    } else {
      return bad(`unsupported filter ${key}=${value}`);
    }
  }
  const columns = select.map((c) => (c === '*' ? c : quoteIdent(c))).join(', ');
  const text = `SELECT coalesce(json_agg(_), '[]') AS result
                  FROM (SELECT ${columns} FROM public.${quoteIdent(relation)}
                        ${where.length ? `WHERE ${where.join(' AND ')}` : ''}${order}${limit}) _`;
  return inTransaction(db, role, claims, text, values);
}

async function inTransaction(
  db: pg.Client,
  role: string,
  claims: Record<string, unknown>,
  text: string,
  values: unknown[],
): Promise<{ status: number; payload: unknown }> {
  await db.query('BEGIN');
  try {
    await db.query(`SET LOCAL ROLE ${quoteIdent(role)}`);
    await db.query(`SELECT set_config('request.jwt.claims', $1, true)`, [JSON.stringify(claims)]);
    const { rows } = await db.query<{ result: unknown }>(text, values);
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
  return inTransaction(db, role, { role }, text, [JSON.stringify(args)]);
}

export interface PostgrestStandin {
  url: string;
  /** Requests answered, for asserting that a call did (or did not) reach the server. */
  requests: Array<{ role: string; fn: string; args: Record<string, unknown> }>;
  /** The HTTP server (realtime-standin.ts adds Supabase Realtime's websocket to it). */
  server: Server;
  close(): Promise<void>;
}

export async function startPostgrest(databaseUrl: string): Promise<PostgrestStandin> {
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  const requests: PostgrestStandin['requests'] = [];
  let queue = Promise.resolve(); // one connection: one request at a time
  const server: Server = createServer((request, response) => {
    queue = queue.then(async () => {
      const url = new URL(request.url ?? '/', 'http://standin');
      const path = url.pathname.replace(/^\/rest\/v1(?=\/)/, '');
      const match = /^\/rpc\/([a-z_][a-z0-9_]*)$/.exec(path);
      const relation = /^\/([a-z_][a-z0-9_]*)$/.exec(path);
      const { role, claims } = claimsOf(request.headers.authorization);
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
      } else if (request.method === 'GET' && relation && ROLES.has(role)) {
        ({ status, payload } = await read(db, role, claims, relation[1]!, url.searchParams));
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
    server,
    async close() {
      await new Promise<void>((resolve, reject) =>
        server.close((e) => (e ? reject(e) : resolve())),
      );
      await db.end();
    },
  };
}
