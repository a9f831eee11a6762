// Shared by the package's tests: the database under test and small helpers.
//
// The tests need a migrated Broseph database and a worker serving it:
// tests/test_typescript_client.py (pytest) makes both and runs `npm test` with DATABASE_URL set.

import { randomUUID } from 'node:crypto';
import pg from 'pg';

export function databaseUrl(): string {
  const url = process.env['DATABASE_URL'];
  if (!url) {
    throw new Error(
      'DATABASE_URL is not set: run these tests through pytest tests/test_typescript_client.py, ' +
        'or point DATABASE_URL at a migrated database with a broseph worker running',
    );
  }
  return url;
}

export async function connect(): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: databaseUrl() });
  await client.connect();
  return client;
}

/** A new active group (GeneratePrompt and ProcessEngagement read it). */
export async function makeGroup(db: pg.ClientBase, name = 'Crew'): Promise<string> {
  const { rows } = await db.query<{ id: string }>(
    "INSERT INTO public.groups (name, time_zone, active) VALUES ($1::text, 'UTC', true) RETURNING id",
    [name],
  );
  return rows[0]!.id;
}

export function uuid(): string {
  return randomUUID();
}

export interface RecordRow {
  id: string;
  job_type: string;
  status: string;
  params: Record<string, unknown>;
  source: string;
  idempotency_key: string | null;
  max_attempts: number | null;
  last_error: string | null;
}

/** The job record and its queue row, seen from another connection (committed state only). */
export async function record(
  db: pg.ClientBase,
  id: string,
): Promise<
  | (RecordRow & {
      queued: boolean;
      priority: number | null;
      scheduled_at: Date | null;
      args: Record<string, unknown> | null;
    })
  | undefined
> {
  const { rows } = await db.query(
    `SELECT r.id, r.job_type, r.status, r.params, r.source, r.idempotency_key, r.max_attempts,
            r.last_error, j.id IS NOT NULL AS queued, j.priority, j.scheduled_at, j.args
       FROM broseph.job_records r
       LEFT JOIN public.procrastinate_jobs j ON j.id = r.procrastinate_job_id
      WHERE r.id = $1::uuid`,
    [id],
  );
  return rows[0];
}

/** Whether anything — record or queue row — exists for a record id (committed state). */
export async function anythingFor(db: pg.ClientBase, id: string): Promise<boolean> {
  const { rows } = await db.query<{ found: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM broseph.job_records WHERE id = $1::uuid)
         OR EXISTS (SELECT 1 FROM public.procrastinate_jobs WHERE args ->> 'record_id' = $1::text)
         AS found`,
    [id],
  );
  return rows[0]!.found;
}

/** Poll until the record reaches a final status; fail with what it was after `seconds`. */
export async function finalStatus(db: pg.ClientBase, id: string, seconds = 30): Promise<RecordRow> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const row = await record(db, id);
    if (row && ['completed', 'failed', 'cancelled'].includes(row.status)) return row;
    if (Date.now() > deadline) {
      throw new Error(
        `record ${id} still ${row?.status ?? 'missing'} after ${seconds}s: is a worker running?`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
