// enqueue / enqueueMany on node-postgres against a real, migrated Broseph database with a worker.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';

import { EnqueueValidationError, enqueue, enqueueMany } from '../src/index.js';
import {
  anythingFor,
  connect,
  databaseUrl,
  finalStatus,
  makeGroup,
  record,
  uuid,
} from './support.js';

let api: pg.Client; // the producer's connection: the code under test runs on it
let observer: pg.Client; // another session: sees committed state only

before(async () => {
  api = await connect();
  observer = await connect();
});

after(async () => {
  await api.end();
  await observer.end();
});

/** Run fn inside BEGIN … ROLLBACK on the producer's connection. */
async function rolledBack<T>(fn: () => Promise<T>): Promise<T> {
  await api.query('BEGIN');
  try {
    return await fn();
  } finally {
    await api.query('ROLLBACK');
  }
}

async function rejection(promise: Promise<unknown>): Promise<EnqueueValidationError> {
  const error = await promise.then(
    () => assert.fail('expected the enqueue to be rejected'),
    (e: unknown) => e,
  );
  assert.ok(
    error instanceof EnqueueValidationError,
    `not an EnqueueValidationError: ${String(error)}`,
  );
  return error;
}

describe('transactions', () => {
  test('enqueue inside a transaction then ROLLBACK leaves nothing', async () => {
    const groupId = await makeGroup(observer);
    await api.query('BEGIN');
    const id = await enqueue(api, 'GeneratePrompt', { groupId, localDate: '2026-03-01' });
    assert.match(id, /^[0-9a-f-]{36}$/);
    assert.equal(await anythingFor(observer, id), false, 'visible before COMMIT');
    await api.query('ROLLBACK');
    assert.equal(await anythingFor(observer, id), false, 'left behind by ROLLBACK');
    assert.equal(await anythingFor(api, id), false);
  });

  test('COMMIT makes a record that a worker completes', async () => {
    await api.query('BEGIN');
    const groupId = await makeGroup(api, 'Committed crew');
    const id = await enqueue(
      api,
      'GeneratePrompt',
      { groupId, localDate: '2026-03-02' },
      { idempotencyKey: `prompt:${groupId}:2026-03-02` },
    );
    assert.equal(await anythingFor(observer, id), false, 'visible before COMMIT');
    await api.query('COMMIT');

    const done = await finalStatus(observer, id);
    assert.equal(done.status, 'completed', done.last_error ?? '');
    assert.deepEqual(done.params, { group_id: groupId, local_date: '2026-03-02' });
    assert.equal(done.source, 'api');
    const { rows } = await observer.query(
      "SELECT count(*)::int AS n FROM public.prompts WHERE group_id = $1::uuid AND local_date = '2026-03-02'",
      [groupId],
    );
    assert.equal(rows[0].n, 1, 'the worker stored the prompt');
  });

  test('ProcessEngagement without localDate runs for the group’s local date at enqueue', async () => {
    const groupId = await makeGroup(observer, 'Legacy crew');
    await api.query('BEGIN');
    const id = await enqueue(api, 'ProcessEngagement', { groupId });
    const { rows } = await api.query<{ today: string }>(
      "SELECT (now() AT TIME ZONE 'UTC')::date::text AS today", // the group's zone is UTC
    );
    await api.query('COMMIT');

    const done = await finalStatus(observer, id);
    assert.equal(done.status, 'completed', done.last_error ?? '');
    assert.deepEqual(done.params, { group_id: groupId, local_date: rows[0]!.today });
  });

  test('a typed error inside a transaction: roll back, nothing is left', async () => {
    const groupId = uuid();
    await api.query('BEGIN');
    const first = await enqueue(api, 'ProcessEngagement', { groupId, localDate: '2026-03-01' });
    await rejection(enqueue(api, 'ProcessEngagement', { localDate: '2026-03-01' } as never));
    await api.query('ROLLBACK');
    assert.equal(await anythingFor(observer, first), false);
  });
});

describe('arguments', () => {
  test('options reach the contract under their SQL names', async () => {
    const groupId = uuid();
    const runAt = new Date(Date.now() + 3_600_000);
    const id = await rolledBack(async () => {
      const rid = await enqueue(
        api,
        'ProcessEngagement',
        { groupId, localDate: '2026-03-01' },
        {
          idempotencyKey: `engagement:${groupId}`,
          runAt,
          priority: 7,
          source: 'nest-api',
          retry: { maxAttempts: 2, backoffType: 'fixed', backoffSeconds: 3 },
        },
      );
      const row = await record(api, rid);
      assert.ok(row);
      assert.equal(row.idempotency_key, `engagement:${groupId}`);
      assert.equal(row.priority, 7);
      assert.equal(row.scheduled_at?.getTime(), runAt.getTime());
      assert.equal(row.source, 'nest-api');
      assert.equal(row.max_attempts, 2);
      assert.deepEqual(row.args?.['_retry'], {
        max_attempts: 2,
        backoff_type: 'fixed',
        backoff_seconds: 3,
      });
      return rid;
    });
    assert.equal(await anythingFor(observer, id), false);
  });

  test('the caller’s trace context is stored with the record; a malformed one is refused', async () => {
    // What OpenTelemetry's propagation.inject(context.active(), carrier) gives a NestJS handler.
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const groupId = uuid();
    await rolledBack(async () => {
      const rid = await enqueue(
        api,
        'ProcessEngagement',
        { groupId, localDate: '2026-03-01' },
        { traceparent, tracestate: 'nest=1' },
      );
      const { rows } = await api.query(
        'SELECT traceparent, tracestate FROM broseph.job_records WHERE id = $1::uuid',
        [rid],
      );
      assert.deepEqual(rows[0], { traceparent, tracestate: 'nest=1' });
    });
    const error = await rejection(
      enqueue(api, 'ProcessEngagement', { groupId, localDate: '2026-03-01' }, {
        traceparent: traceparent.toUpperCase(),
      }),
    );
    assert.equal(error.column, 'traceparent');
  });

  test('camelCase params are stored under the contract names, nested ones too', async () => {
    await rolledBack(async () => {
      const [userId, groupId, promptId] = [uuid(), uuid(), uuid()];
      const id = await enqueue(
        api,
        'SendNotification',
        { userId, type: 'new_prompt', data: { groupId, promptId } },
        { runAt: new Date(Date.now() + 3_600_000) },
      );
      const row = await record(api, id);
      assert.deepEqual(row?.params, {
        user_id: userId,
        type: 'new_prompt',
        data: { group_id: groupId, prompt_id: promptId },
      });
    });
  });

  test('a repeated idempotency key returns the same record', async () => {
    await rolledBack(async () => {
      const groupId = uuid();
      const key = `prompt:${groupId}:2026-03-01`;
      const first = await enqueue(api, 'GeneratePrompt', { groupId }, { idempotencyKey: key });
      const again = await enqueue(api, 'GeneratePrompt', { groupId }, { idempotencyKey: key });
      assert.equal(again, first);
    });
  });

  test('enqueueMany: ids in order, keys of any characters, on a Pool too', async () => {
    const groupIds = [uuid(), uuid(), uuid()];
    const keys = ['plain', "quote \" back\\slash, {brace} 'single'", 'ünïcødé ✓ 🙂 NULL'].map(
      (k) => `${k}:${groupIds[0]}`,
    );
    const params = groupIds.map((groupId) => ({ groupId, localDate: '2026-03-01' }));
    const pool = new pg.Pool({ connectionString: databaseUrl(), max: 1 });
    try {
      const ids = await enqueueMany(pool, 'ProcessEngagement', params, {
        idempotencyKeys: keys,
        runAt: new Date(Date.now() + 3_600_000),
      });
      assert.equal(ids.length, 3);
      assert.equal(new Set(ids).size, 3);
      for (const [i, id] of ids.entries()) {
        const row = await record(observer, id); // a Pool autocommits: visible at once
        assert.equal(row?.idempotency_key, keys[i]);
        assert.equal(row?.params['group_id'], groupIds[i]);
      }
      const again = await enqueueMany(pool, 'ProcessEngagement', params, { idempotencyKeys: keys });
      assert.deepEqual(again, ids);
      assert.deepEqual(await enqueueMany(pool, 'ProcessEngagement', []), []);
    } finally {
      await pool.end();
    }
  });
});

describe('typed errors at run time', () => {
  const groupId = '6b1d8f53-2d0b-4c8e-9a57-3f9f4c1e2a10';

  const cases: Array<{
    name: string;
    call: () => Promise<unknown>;
    field: string;
    column: string;
    index?: number;
  }> = [
    {
      name: 'an unknown field',
      call: () =>
        enqueue(api, 'ProcessEngagement', {
          groupId,
          localDate: '2026-03-01',
          colour: 'red',
        } as never),
      field: 'params.colour',
      column: 'params.colour',
    },
    {
      name: 'a missing field',
      call: () => enqueue(api, 'ProcessEngagement', { localDate: '2026-03-01' } as never),
      field: 'params.groupId',
      column: 'params.group_id',
    },
    {
      name: 'a malformed value',
      call: () =>
        enqueue(api, 'ProcessEngagement', { groupId: 'not-a-uuid', localDate: '2026-03-01' }),
      field: 'params.groupId',
      column: 'params.group_id',
    },
    {
      name: 'an impossible date',
      call: () => enqueue(api, 'ProcessEngagement', { groupId, localDate: '2026-02-30' }),
      field: 'params.localDate',
      column: 'params.local_date',
    },
    {
      name: 'a nested field',
      call: () =>
        enqueue(api, 'SendNotification', {
          userId: groupId,
          type: 'new_message',
          data: { groupId: 'x' },
        }),
      field: 'params.data.groupId',
      column: 'params.data.group_id',
    },
    {
      name: 'params that are not an object',
      call: () => enqueue(api, 'GeneratePrompt', [1, 2] as never),
      field: 'params',
      column: 'params',
    },
    {
      name: 'an unknown job type',
      call: () => enqueue(api, 'SendPigeon' as never, {} as never),
      field: 'jobType',
      column: 'job_type',
    },
    {
      name: 'one bad element of a list',
      call: () =>
        enqueueMany(api, 'ProcessEngagement', [
          { groupId, localDate: '2026-03-01' },
          { localDate: '2026-03-01' } as never,
        ]),
      field: 'params[1].groupId',
      column: 'params[2].group_id',
      index: 1,
    },
    {
      name: 'keys that do not match the list',
      call: () =>
        enqueueMany(api, 'ProcessEngagement', [{ groupId, localDate: '2026-03-01' }], {
          idempotencyKeys: ['a', 'b'],
        }),
      field: 'idempotencyKeys',
      column: 'idempotency_keys',
    },
    {
      name: 'an invalid Date',
      call: () => enqueue(api, 'GeneratePrompt', { groupId }, { runAt: new Date('nope') }),
      field: 'runAt',
      column: 'run_at',
    },
    {
      name: 'a fractional priority',
      call: () => enqueue(api, 'GeneratePrompt', { groupId }, { priority: 1.5 }),
      field: 'priority',
      column: 'priority',
    },
    {
      name: 'a NUL character in a nested field',
      call: () =>
        enqueue(api, 'SendNotification', {
          userId: groupId,
          type: 'new_message',
          data: { groupId: `${groupId}\u0000` },
        }),
      field: 'params.data.groupId',
      column: 'params.data.group_id',
    },
    {
      name: 'a NUL character in an idempotency key',
      call: () => enqueue(api, 'GeneratePrompt', { groupId }, { idempotencyKey: 'k\u0000' }),
      field: 'idempotencyKey',
      column: 'idempotency_key',
    },
    {
      // node-postgres would store U+FFFD instead: two different keys would become one.
      name: 'a lone surrogate in one key of a list',
      call: () =>
        enqueueMany(api, 'GeneratePrompt', [{ groupId }, { groupId }], {
          idempotencyKeys: ['fine 🙂', 'broken \uD83D'],
        }),
      field: 'idempotencyKeys[1]',
      column: 'idempotency_keys[2]',
      index: 1,
    },
    {
      name: 'a NUL character in a field name',
      call: () => enqueue(api, 'GeneratePrompt', { groupId, ['x\u0000']: 1 } as never),
      field: 'params',
      column: 'params',
    },
  ];

  for (const c of cases) {
    test(`${c.name} → EnqueueValidationError naming ${c.field}`, async () => {
      const error = await rolledBack(() => rejection(c.call()));
      assert.equal(error.code, '22023');
      assert.equal(error.field, c.field, error.message);
      assert.equal(error.column, c.column, error.message);
      assert.equal(error.index, c.index);
      assert.ok(error.jobType);
    });
  }

  test("the database's COLUMN wins over the message", async () => {
    // What the contract raises once every argument names itself in COLUMN: a trigger raises
    // such an error (with a message no parser knows) inside this transaction only.
    await rolledBack(async () => {
      await api.query(`
        CREATE FUNCTION broseph.test_fail_with_column() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'the date is not one we can use'
                USING ERRCODE = 'invalid_parameter_value', COLUMN = TG_ARGV[0];
        END $$`);
      await api.query(`
        CREATE TRIGGER test_fail_with_column BEFORE INSERT ON broseph.job_records
        FOR EACH ROW EXECUTE FUNCTION broseph.test_fail_with_column('params[2].data.prompt_id')`);
      const error = await rejection(
        enqueueMany(api, 'SendNotification', [
          { userId: groupId, type: 'new_message', data: { groupId } },
          { userId: groupId, type: 'new_prompt', data: { groupId, promptId: groupId } },
        ]),
      );
      assert.equal(error.column, 'params[2].data.prompt_id');
      assert.equal(error.field, 'params[1].data.promptId');
      assert.equal(error.index, 1);
      assert.equal(error.message, 'the date is not one we can use');
    });
  });

  test('other database errors pass through unchanged', async () => {
    const error = await rolledBack(async () => {
      await api.query('SET LOCAL ROLE authenticated');
      return enqueue(api, 'GeneratePrompt', { groupId }).then(
        () => assert.fail('authenticated may not enqueue'),
        (e: unknown) => e,
      );
    });
    assert.ok(!(error instanceof EnqueueValidationError));
    assert.equal((error as { code?: string }).code, '42501');
  });
});
