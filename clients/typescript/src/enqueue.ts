// enqueue / enqueueMany: broseph.enqueue on the caller's own node-postgres client.
//
// Nothing here opens, commits or rolls back a transaction: on a client inside BEGIN … COMMIT the
// job exists when the caller commits and never did if it rolls back; on a Pool (autocommit) it
// exists at once. Every parameter is typed in the SQL text, so the statement also works as the
// (unnamed) prepared statement node-postgres sends, and through a transaction pooler.

import {
  manyJobs,
  oneJob,
  type ContractArguments,
  type EnqueueManyOptions,
  type EnqueueOptions,
} from './arguments.js';
import { translate } from './errors.js';
import type { JobParams, JobType } from './generated/jobs.js';

/** Anything with node-postgres's `query(text, values)`: a Client, a PoolClient, a Pool. */
export interface Queryable {
  query(text: string, values?: unknown[]): Promise<{ rows: unknown[] }>;
}

/** The SQL type of each argument of broseph.enqueue / broseph.enqueue_many. */
const SQL_TYPES: Record<string, string> = {
  job_type: 'text',
  idempotency_key: 'text',
  idempotency_keys: 'text[]',
  run_at: 'timestamptz',
  priority: 'integer',
  source: 'text',
  retry: 'jsonb',
  traceparent: 'text',
  tracestate: 'text',
};

/** `SELECT fn(name => $1::type, …) AS result`: named arguments, each parameter typed. */
export function statement(
  fn: 'broseph.enqueue' | 'broseph.enqueue_many',
  args: ContractArguments,
): { text: string; values: unknown[] } {
  const names = Object.keys(args);
  const list = names.map((name, i) => {
    const type =
      name === 'params' ? (fn === 'broseph.enqueue' ? 'jsonb' : 'jsonb[]') : SQL_TYPES[name];
    return `${name} => $${i + 1}::${type}`;
  });
  const values = names.map((name) => {
    const value = args[name];
    if (name === 'params' && Array.isArray(value) && fn === 'broseph.enqueue_many') {
      return value.map((item) => JSON.stringify(item));
    }
    return name === 'params' || name === 'retry' ? JSON.stringify(value) : value;
  });
  return { text: `SELECT ${fn}(${list.join(', ')}) AS result`, values };
}

async function call(
  db: Queryable,
  jobType: string,
  fn: 'broseph.enqueue' | 'broseph.enqueue_many',
  args: ContractArguments,
): Promise<unknown> {
  const { text, values } = statement(fn, args);
  try {
    const { rows } = await db.query(text, values);
    return (rows[0] as { result: unknown }).result;
  } catch (error) {
    throw translate(error, jobType);
  }
}

/**
 * Enqueue one job in the caller's transaction; resolves to its record id (the existing one for a
 * repeated idempotency key or a coalesced pending job). A bad argument rejects with an
 * EnqueueValidationError naming the field.
 */
export async function enqueue<T extends JobType>(
  db: Queryable,
  jobType: T,
  params: JobParams[T],
  options: EnqueueOptions = {},
): Promise<string> {
  const args = oneJob(jobType, params, options, 'api');
  return (await call(db, jobType, 'broseph.enqueue', args)) as string;
}

/**
 * Enqueue many jobs of one type (a fan-out) in one statement; record ids in input order. An
 * error about one element has its 0-based position in `error.index`.
 */
export async function enqueueMany<T extends JobType>(
  db: Queryable,
  jobType: T,
  params: readonly JobParams[T][],
  options: EnqueueManyOptions = {},
): Promise<string[]> {
  const args = manyJobs(jobType, params, options, 'api');
  return (await call(db, jobType, 'broseph.enqueue_many', args)) as string[];
}
