// Type tests: `tsc --noEmit` compiles this file (tsconfig.json). Each `@ts-expect-error` line
// below MUST fail to compile: if one starts compiling, tsc reports the directive as unused and
// the check fails. tests/test_typescript_client.py also compiles a copy without the directives
// and checks that every one of those lines is an error.
//
// Keep each checked call on ONE line: the directive covers the line after it only.

import { PostgrestClient } from '@supabase/postgrest-js';
import pg from 'pg';

import { enqueue, enqueueMany, enqueueManyRpc, enqueueRpc, type JobParams } from '../src/index.js';

declare const client: pg.Client;
declare const poolClient: pg.PoolClient;
declare const pool: pg.Pool;
declare const postgrest: PostgrestClient;
declare const groupId: string;
declare const userId: string;

export async function compiles(): Promise<string[]> {
  const ids = [
    await enqueue(client, 'GeneratePrompt', { groupId }),
    await enqueue(poolClient, 'GeneratePrompt', { groupId, localDate: '2026-03-01' }, { idempotencyKey: 'k', runAt: new Date(), priority: 1 }),
    await enqueue(pool, 'ProcessEngagement', { groupId, localDate: '2026-03-01' }, { retry: { maxAttempts: 3, backoffType: 'fixed' } }),
    // localDate left out: enqueue fills in the group's local date (migrations/0021).
    await enqueue(client, 'ProcessEngagement', { groupId }),
    await enqueue(client, 'SendNotification', { userId, type: 'new_prompt', data: { groupId, promptId: groupId } }),
    await enqueue(client, 'NotifyMembers', { groupId, type: 'new_message', senderId: userId }),
    await enqueueRpc(postgrest, 'GeneratePrompt', { groupId }, { idempotencyKey: 'k' }),
  ];
  const params: JobParams['ProcessEngagement'][] = [{ groupId, localDate: '2026-03-01' }];
  ids.push(...(await enqueueMany(client, 'ProcessEngagement', params, { idempotencyKeys: ['a'] })));
  ids.push(...(await enqueueManyRpc(postgrest, 'ProcessEngagement', params, { idempotencyKeys: [null] })));
  return ids;
}

export async function wrongFieldsDoNotCompile(): Promise<void> {
  // @ts-expect-error a misspelt field
  await enqueue(client, 'GeneratePrompt', { groupID: groupId });
  // @ts-expect-error snake_case is SQL's spelling, not TypeScript's
  await enqueue(client, 'GeneratePrompt', { group_id: groupId });
  // @ts-expect-error a field the job type does not have
  await enqueue(client, 'ProcessEngagement', { groupId, localDate: '2026-03-01', colour: 'red' });
  // @ts-expect-error a required field left out
  await enqueue(client, 'ProcessEngagement', { localDate: '2026-03-01' });
  // @ts-expect-error a field of the wrong type
  await enqueue(client, 'GeneratePrompt', { groupId: 42 });
  // @ts-expect-error a value outside the enum
  await enqueue(client, 'SendNotification', { userId, type: 'poke', data: { groupId } });
  // @ts-expect-error a nested field the model does not have
  await enqueue(client, 'SendNotification', { userId, type: 'new_message', data: { groupId, messageText: 'hi' } });
  // @ts-expect-error another job type's field
  await enqueue(client, 'NotifyMembers', { groupId, type: 'new_message', userId });
  // @ts-expect-error a job type that does not exist
  await enqueue(client, 'SendPigeon', { groupId });
  // @ts-expect-error option names are camelCase too
  await enqueue(client, 'GeneratePrompt', { groupId }, { idempotency_key: 'k' });
  // @ts-expect-error runAt is a Date
  await enqueue(client, 'GeneratePrompt', { groupId }, { runAt: '2026-03-01T08:00:00Z' });
  // @ts-expect-error retry's keys are checked
  await enqueue(client, 'GeneratePrompt', { groupId }, { retry: { attempts: 3 } });
  // @ts-expect-error enqueueMany checks every element
  await enqueueMany(client, 'ProcessEngagement', [{ groupId, localDate: '2026-03-01' }, { groupId, localDat: '2026-03-01' }]);
  // @ts-expect-error enqueueMany takes idempotencyKeys, not one key
  await enqueueMany(client, 'ProcessEngagement', [{ groupId, localDate: '2026-03-01' }], { idempotencyKey: 'k' });
  // @ts-expect-error the RPC form checks the same
  await enqueueRpc(postgrest, 'GeneratePrompt', { groupID: groupId });
  // @ts-expect-error not a database client
  await enqueue({ rpc: postgrest.rpc }, 'GeneratePrompt', { groupId });
}
