// A stand-in for Supabase Realtime's `postgres_changes`, enough for the real
// @supabase/realtime-js client (what supabase.channel delegates to) to subscribe to a table of
// the test database and receive its UPDATEs.
//
// What it copies from Realtime: the Phoenix websocket at /realtime/v1/websocket (protocol 2.0.0:
// [join_ref, ref, topic, event, payload] arrays), heartbeats, phx_join with
// config.postgres_changes and the access token, answered with the bindings and their ids; each
// change pushed as `postgres_changes` {ids, data: {schema, table, type, commit_timestamp,
// columns, record, old_record, errors}}; and the rule of Realtime's realtime.apply_rls: a row
// reaches a subscriber only when the subscriber's role, with its JWT claims, may see it under
// RLS, and only with the columns that role may SELECT (has_column_privilege).
// What it does NOT copy: Realtime decodes the WAL of the supabase_realtime publication (here
// the server has no logical decoding, so a subscription polls its rows every 50 ms as the
// subscriber); filters other than `col=eq.value`; INSERT and DELETE events; private channels,
// broadcast and presence. The JWT is decoded, not verified.

import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import pg from 'pg';
import { WebSocketServer, type WebSocket } from 'ws';

import { claimsOf } from './postgrest-standin.js';

type Message = [string | null, string | null, string, string, Record<string, unknown>];

interface Binding {
  event: string;
  schema: string;
  table: string;
  filter?: string;
}

const IDENT = /^[a-z_][a-z0-9_]*$/;

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export interface RealtimeStandin {
  /** Every phx_join received: topic and payload (config, access_token). */
  joins: Array<{ topic: string; payload: Record<string, unknown> }>;
  close(): Promise<void>;
}

class Subscription {
  private last = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  // Its own connection: a poll is a transaction.
  private readonly db: pg.Client;

  constructor(
    databaseUrl: string,
    private readonly socket: WebSocket,
    private readonly topic: string,
    private readonly id: number,
    private readonly binding: Binding,
    private readonly role: string,
    private readonly claims: Record<string, unknown>,
  ) {
    this.db = new pg.Client({ connectionString: databaseUrl });
  }

  async start(): Promise<void> {
    await this.db.connect();
    await this.poll(false);
    this.timer = setInterval(() => void this.poll(true), 50);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    while (this.busy) await new Promise((resolve) => setTimeout(resolve, 10));
    await this.db.end().catch(() => undefined);
  }

  private async poll(push: boolean): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const { schema, table, filter } = this.binding;
      const entity = `${quoteIdent(schema)}.${quoteIdent(table)}`;
      // Realtime sends only the columns the subscriber's role may SELECT.
      const { rows: columns } = await this.db.query<{ name: string; type: string }>(
        `SELECT a.attname AS name, t.typname AS type
           FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
          WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
            AND has_column_privilege($2, a.attrelid, a.attnum, 'SELECT')
          ORDER BY a.attnum`,
        [entity, this.role],
      );
      if (!columns.some((c) => c.name === 'id')) return; // Realtime: 401 without the primary key
      const values: string[] = [];
      let where = '';
      const eq = /^([a-z_][a-z0-9_]*)=eq\.(.*)$/.exec(filter ?? '');
      if (eq) {
        values.push(eq[2]!);
        where = `WHERE ${quoteIdent(eq[1]!)} = $1`;
      }
      const list = columns.map((c) => quoteIdent(c.name)).join(', ');
      // RLS as the subscriber, with its claims (what apply_rls's prepared statement checks).
      await this.db.query('BEGIN');
      let rows: Array<{ record: Record<string, unknown> }>;
      try {
        await this.db.query(`SET LOCAL ROLE ${quoteIdent(this.role)}`);
        await this.db.query(`SELECT set_config('request.jwt.claims', $1, true)`, [
          JSON.stringify(this.claims),
        ]);
        ({ rows } = await this.db.query(
          `SELECT to_jsonb(_) AS record FROM (SELECT ${list} FROM ${entity} ${where}) _`,
          values,
        ));
      } finally {
        await this.db.query('ROLLBACK');
      }
      for (const { record } of rows) {
        const key = String(record['id']);
        const text = JSON.stringify(record);
        const before = this.last.get(key);
        this.last.set(key, text);
        if (push && before !== undefined && before !== text && ['UPDATE', '*'].includes(this.binding.event)) {
          const change = {
            schema,
            table,
            type: 'UPDATE',
            commit_timestamp: new Date().toISOString(),
            columns,
            record,
            old_record: { id: record['id'] },
            errors: null,
          };
          this.socket.send(JSON.stringify([null, null, this.topic, 'postgres_changes', { ids: [this.id], data: change }]));
        }
      }
    } finally {
      this.busy = false;
    }
  }
}

export function attachRealtime(server: Server, databaseUrl: string): RealtimeStandin {
  const joins: RealtimeStandin['joins'] = [];
  const subscriptions: Subscription[] = [];
  let nextId = 1;
  const wss = new WebSocketServer({ noServer: true });
  const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (!(request.url ?? '').startsWith('/realtime/v1/websocket')) {
      socket.destroy();
      return;
    }
    wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request));
  };
  server.on('upgrade', onUpgrade);
  wss.on('connection', (ws: WebSocket) => {
    const reply = (joinRef: string | null, ref: string | null, topic: string, response: unknown) =>
      ws.send(JSON.stringify([joinRef, ref, topic, 'phx_reply', { status: 'ok', response }]));
    ws.on('message', async (data) => {
      const [joinRef, ref, topic, event, payload] = JSON.parse(String(data)) as Message;
      if (event === 'phx_join') {
        joins.push({ topic, payload });
        const config = (payload['config'] ?? {}) as { postgres_changes?: Binding[] };
        const { role, claims } = claimsOf(`Bearer ${String(payload['access_token'] ?? 'anon')}`);
        const bindings = (config.postgres_changes ?? []).map((binding) => ({ id: nextId++, ...binding }));
        for (const binding of bindings) {
          if (!IDENT.test(binding.schema) || !IDENT.test(binding.table)) continue;
          const subscription = new Subscription(databaseUrl, ws, topic, binding.id, binding, role, claims);
          subscriptions.push(subscription);
          await subscription.start();
        }
        reply(joinRef, ref, topic, { postgres_changes: bindings });
      } else {
        reply(joinRef, ref, topic, {}); // heartbeat, access_token, phx_leave
      }
    });
    ws.on('close', () => subscriptions.forEach((s) => void s.stop()));
  });
  return {
    joins,
    async close() {
      server.off('upgrade', onUpgrade);
      await Promise.all(subscriptions.map((s) => s.stop()));
      for (const client of wss.clients) client.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
