// The RPC form with the real @supabase/postgrest-js client (supabase.rpc delegates to it) against
// a PostgREST stand-in on the test database: public.broseph_enqueue(_many) of migrations/0017.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PostgrestClient } from '@supabase/postgrest-js';
import type pg from 'pg';

import {
  EnqueueRpcError,
  EnqueueValidationError,
  enqueueManyRpc,
  enqueueRpc,
} from '../src/index.js';
import { startPostgrest, type PostgrestStandin } from './postgrest-standin.js';
import { connect, databaseUrl, finalStatus, makeGroup, record, uuid } from './support.js';

let standin: PostgrestStandin;
let observer: pg.Client;

function asRole(role: string): PostgrestClient {
  return new PostgrestClient(standin.url, { headers: { Authorization: `Bearer ${role}` } });
}

before(async () => {
  standin = await startPostgrest(databaseUrl());
  observer = await connect();
});

after(async () => {
  await standin.close();
  await observer.end();
});

describe('enqueueRpc as service_role', () => {
  test('enqueues a job a worker completes, params under the contract names', async () => {
    const groupId = await makeGroup(observer, 'RPC crew');
    const id = await enqueueRpc(
      asRole('service_role'),
      'GeneratePrompt',
      { groupId, localDate: '2026-04-01' },
      {
        idempotencyKey: `prompt:${groupId}:2026-04-01`,
      },
    );
    const done = await finalStatus(observer, id);
    assert.equal(done.status, 'completed', done.last_error ?? '');
    assert.equal(done.source, 'rpc');
    assert.deepEqual(done.params, { group_id: groupId, local_date: '2026-04-01' });
    assert.equal(done.idempotency_key, `prompt:${groupId}:2026-04-01`);
    assert.deepEqual(standin.requests.at(-1), {
      role: 'service_role',
      fn: 'broseph_enqueue',
      args: {
        job_type: 'GeneratePrompt',
        params: { group_id: groupId, local_date: '2026-04-01' },
        idempotency_key: `prompt:${groupId}:2026-04-01`,
        source: 'rpc',
      },
    });
  });

  test('options arrive under their SQL names', async () => {
    const runAt = new Date(Date.now() + 3_600_000);
    const id = await enqueueRpc(
      asRole('service_role'),
      'ProcessEngagement',
      { groupId: uuid(), localDate: '2026-04-01' },
      {
        runAt,
        priority: -3,
        source: 'edge-function',
        retry: { maxAttempts: 9 },
      },
    );
    const row = await record(observer, id);
    assert.equal(row?.scheduled_at?.getTime(), runAt.getTime());
    assert.equal(row?.priority, -3);
    assert.equal(row?.source, 'edge-function');
    assert.equal(row?.max_attempts, 9);
  });

  test('enqueueManyRpc: record ids in input order', async () => {
    const groupIds = [uuid(), uuid()];
    const ids = await enqueueManyRpc(
      asRole('service_role'),
      'ProcessEngagement',
      groupIds.map((groupId) => ({ groupId, localDate: '2026-04-01' })),
      {
        idempotencyKeys: groupIds.map((g) => `rpc-many:${g}`),
        runAt: new Date(Date.now() + 3_600_000),
      },
    );
    assert.equal(ids.length, 2);
    for (const [i, id] of ids.entries()) {
      assert.equal((await record(observer, id))?.params['group_id'], groupIds[i]);
    }
  });
});

describe('errors through RPC', () => {
  test('a wrong field is a typed error naming it (from the message)', async () => {
    const error = await enqueueRpc(asRole('service_role'), 'ProcessEngagement', {
      localDate: '2026-04-01',
    } as never).then(
      () => assert.fail('expected a rejection'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof EnqueueValidationError);
    assert.equal(error.field, 'params.groupId');
  });

  test('one bad element of a list names its index', async () => {
    const error = await enqueueManyRpc(asRole('service_role'), 'ProcessEngagement', [
      { groupId: uuid(), localDate: '2026-04-01' },
      { groupId: 'nope', localDate: '2026-04-01' },
    ]).then(
      () => assert.fail('expected a rejection'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof EnqueueValidationError);
    assert.equal(error.field, 'params[1].groupId');
    assert.equal(error.index, 1);
  });

  test("the database's COLUMN reaches the caller through PostgREST (as the detail's last line)", async () => {
    // What the contract raises once every argument names itself in COLUMN: a trigger raises such
    // an error, with a message no parser knows, for this test's group only.
    const groupId = uuid();
    await observer.query(`
      CREATE FUNCTION broseph.test_rpc_column() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
          IF NEW.params ->> 'group_id' = '${groupId}' THEN
              RAISE EXCEPTION 'that day will not do' USING ERRCODE = 'invalid_parameter_value',
                  COLUMN = 'params.local_date', DETAIL = 'the group sleeps', HINT = 'ask later';
          END IF;
          RETURN NEW;
      END $$`);
    await observer.query(`CREATE TRIGGER test_rpc_column BEFORE INSERT ON broseph.job_records
                          FOR EACH ROW EXECUTE FUNCTION broseph.test_rpc_column()`);
    try {
      const error = await enqueueRpc(asRole('service_role'), 'ProcessEngagement', {
        groupId,
        localDate: '2026-04-01',
      }).then(
        () => assert.fail('expected a rejection'),
        (e: unknown) => e,
      );
      assert.ok(error instanceof EnqueueValidationError);
      assert.equal(error.message, 'that day will not do');
      assert.equal(error.column, 'params.local_date');
      assert.equal(error.field, 'params.localDate');
      const cause = error.cause as { details: string; hint: string };
      assert.equal(cause.details, 'the group sleeps\ncolumn: params.local_date');
      assert.equal(cause.hint, 'ask later');
    } finally {
      await observer.query('DROP TRIGGER test_rpc_column ON broseph.job_records');
      await observer.query('DROP FUNCTION broseph.test_rpc_column()');
    }
  });

  for (const role of ['anon', 'authenticated']) {
    test(`${role} may not enqueue: EnqueueRpcError 42501, nothing enqueued`, async () => {
      const groupId = uuid();
      const key = `rpc-denied:${groupId}`;
      for (const call of [
        () =>
          enqueueRpc(
            asRole(role),
            'ProcessEngagement',
            { groupId, localDate: '2026-04-01' },
            { idempotencyKey: key },
          ),
        () =>
          enqueueManyRpc(
            asRole(role),
            'ProcessEngagement',
            [{ groupId, localDate: '2026-04-01' }],
            {
              idempotencyKeys: [key],
            },
          ),
      ]) {
        const error = await call().then(
          () => assert.fail(`${role} enqueued`),
          (e: unknown) => e,
        );
        assert.ok(error instanceof EnqueueRpcError, String(error));
        assert.equal(error.code, '42501');
      }
      const { rows } = await observer.query(
        'SELECT count(*)::int AS n FROM broseph.job_records WHERE idempotency_key = $1::text',
        [key],
      );
      assert.equal(rows[0].n, 0);
    });
  }

  test('an unknown RPC function is an EnqueueRpcError, not a validation error', async () => {
    const client = asRole('service_role');
    const renamed = {
      rpc: (_fn: string, args?: Record<string, unknown>) => client.rpc('broseph_enqueue_v9', args),
    };
    const error = await enqueueRpc(renamed, 'GeneratePrompt', { groupId: uuid() }).then(
      () => assert.fail('expected a rejection'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof EnqueueRpcError);
    assert.equal(error.code, 'PGRST202');
  });
});
