// Turning the contract's errors into field names, without a database: each message form the
// contract raises today (migrations/0004), the COLUMN field, and the RPC wrapper's detail line.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { EnqueueValidationError, columnOf, columnToField } from '../src/index.js';
import { translate } from '../src/errors.js';

describe('columnOf', () => {
  const messages: Array<[string, string | undefined]> = [
    ['ProcessEngagement: missing field "group_id"', 'params.group_id'],
    ['ProcessEngagement: field "group_id" must be a UUID, got "x"', 'params.group_id'],
    [
      'ProcessEngagement: field "local_date" must be a date (YYYY-MM-DD), got "2026-02-30"',
      'params.local_date',
    ],
    ['ProcessEngagement: unknown field "x" (allowed: group_id, local_date)', 'params.x'],
    ['SendNotification: field "data.group_id" must be a UUID, got "x"', 'params.data.group_id'],
    ['SendNotification: field "type" must be one of ["new_message"], got "poke"', 'params.type'],
    ['SendNotification: data. must be a JSON object, got string', 'params.data'],
    ['GeneratePrompt: params must be a JSON object, got array', 'params'],
    ['ProcessEngagement: missing field "params[2].group_id"', 'params[2].group_id'],
    ['ProcessEngagement: params[3]. must be a JSON object, got number', 'params[3]'],
    ['ProcessEngagement: 2 idempotency keys for 1 params', 'idempotency_keys'],
    ['unknown job type "SendPigeon" (known: GeneratePrompt, …)', 'job_type'],
    ['something the contract never said', undefined],
  ];
  for (const [message, column] of messages) {
    test(`message: ${message}`, () => {
      assert.equal(columnOf({ code: '22023', message }), column);
    });
  }

  test('the COLUMN field wins over the message', () => {
    assert.equal(
      columnOf({ message: 'X: missing field "local_date"', column: 'retry.max_attempts' }),
      'retry.max_attempts',
    );
  });

  test("the RPC wrapper's last detail line (PostgREST drops COLUMN)", () => {
    assert.equal(
      columnOf({ message: 'anything', details: 'must be positive\ncolumn: priority' }),
      'priority',
    );
    assert.equal(columnOf({ message: 'anything', details: 'column: run_at' }), 'run_at');
    assert.equal(
      columnOf({ message: 'anything', details: 'column: run_at was said here' }),
      undefined,
    );
  });
});

describe('columnToField', () => {
  const cases: Array<[string, string, string, number?]> = [
    ['ProcessEngagement', 'params.group_id', 'params.groupId'],
    ['SendNotification', 'params.data.prompt_id', 'params.data.promptId'],
    ['SendNotification', 'params[3].data.friend_id', 'params[2].data.friendId', 2],
    ['SendNotification', 'params.data.secret_code', 'params.data.secret_code'],
    ['SendNotification', 'params.unknown_field.group_id', 'params.unknown_field.group_id'],
    ['GeneratePrompt', 'run_at', 'runAt'],
    ['GeneratePrompt', 'idempotency_key', 'idempotencyKey'],
    ['GeneratePrompt', 'idempotency_keys[2]', 'idempotencyKeys[1]', 1],
    ['GeneratePrompt', 'retry.max_attempts', 'retry.maxAttempts'],
    ['GeneratePrompt', 'retry.backoff_seconds', 'retry.backoffSeconds'],
    ['GeneratePrompt', 'job_type', 'jobType'],
    ['GeneratePrompt', 'some_new_argument', 'someNewArgument'],
    ['NoSuchType', 'params.group_id', 'params.group_id'],
    ['GeneratePrompt', 'not a column!', 'not a column!'],
  ];
  for (const [jobType, column, field, index] of cases) {
    test(`${jobType} ${column} → ${field}`, () => {
      assert.deepEqual(
        columnToField(jobType, column),
        index === undefined ? { field } : { field, index },
      );
    });
  }
});

describe('translate', () => {
  test('22023 becomes an EnqueueValidationError with the cause kept', () => {
    const cause = { code: '22023', message: 'GeneratePrompt: missing field "group_id"' };
    const error = translate(cause, 'GeneratePrompt');
    assert.ok(error instanceof EnqueueValidationError);
    assert.equal(error.field, 'params.groupId');
    assert.equal(error.message, cause.message);
    assert.equal(error.cause, cause);
    assert.equal(error.name, 'EnqueueValidationError');
  });

  test('anything else is returned unchanged', () => {
    for (const other of [
      { code: '42501', message: 'permission denied' },
      new Error('boom'),
      'text',
      null,
    ]) {
      assert.equal(translate(other, 'GeneratePrompt'), other);
    }
  });
});
