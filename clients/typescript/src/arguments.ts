// The arguments of one enqueue call in the contract's names, shared by both forms (node-postgres
// and RPC). Only what JavaScript values cannot say in SQL's types is checked here (an invalid
// Date, a fractional or out-of-range priority, text Postgres cannot store); every rule about the
// values is the contract's.

import { EnqueueValidationError } from './errors.js';
import { ARGUMENTS, RETRY_FIELDS, paramsToSql, toSql } from './names.js';

/** The producer's own retry budget for its jobs (else the job type's). */
export interface RetryOptions {
  maxAttempts?: number;
  backoffSeconds?: number;
  backoffType?: 'fixed' | 'exponential';
}

export interface EnqueueOptions {
  /** A repeated key returns the existing job's record id and enqueues nothing. */
  idempotencyKey?: string;
  /** Run no earlier than this. */
  runAt?: Date;
  /** Higher runs first (the contract's default: 0). */
  priority?: number;
  /** Who enqueued, stored on the record (default 'api'; through RPC 'rpc'). */
  source?: string;
  retry?: RetryOptions;
  /**
   * Your current W3C trace context (OpenTelemetry: `propagation.inject(context.active(), carrier)`
   * gives `carrier.traceparent` / `carrier.tracestate`), stored with the job: its attempts run
   * in your trace (README, "Tracing"). A malformed value is refused by name.
   */
  traceparent?: string;
  tracestate?: string;
}

export interface EnqueueManyOptions extends Omit<EnqueueOptions, 'idempotencyKey'> {
  /** One key (or null) per params element, in the same order. */
  idempotencyKeys?: readonly (string | null)[];
}

/** Contract argument name → value; undefined options are left out (the contract's defaults). */
export type ContractArguments = Record<string, unknown>;

const INT4_MAX = 2 ** 31 - 1;

function checkOptions(jobType: string, options: EnqueueManyOptions): void {
  const { runAt, priority } = options;
  if (runAt !== undefined && !(runAt instanceof Date && Number.isFinite(runAt.getTime()))) {
    throw new EnqueueValidationError(
      `${jobType}: runAt must be a valid Date, got ${String(runAt)}`,
      {
        jobType,
        column: ARGUMENTS.runAt,
      },
    );
  }
  if (priority !== undefined && !(Number.isInteger(priority) && Math.abs(priority) <= INT4_MAX)) {
    throw new EnqueueValidationError(
      `${jobType}: priority must be an integer from -${INT4_MAX} to ${INT4_MAX}, got ${String(priority)}`,
      { jobType, column: ARGUMENTS.priority },
    );
  }
}

// A lone UTF-16 surrogate: with the u flag, a well-formed pair is one code point and not matched.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** Why Postgres cannot take this string as it is, if it cannot. */
function unstorable(text: string): string | undefined {
  // Postgres text and jsonb hold no NUL; the driver would replace a lone surrogate with U+FFFD,
  // silently making two different idempotency keys one.
  if (text.includes('\u0000')) return 'contains the NUL character (\\u0000)';
  if (LONE_SURROGATE.test(text)) return 'is not well-formed Unicode (a lone surrogate)';
  return undefined;
}

/** The column (contract names, SQL positions from 1) of the first string Postgres cannot take. */
function findUnstorable(value: unknown, column: string): [string, string] | undefined {
  if (typeof value === 'string') {
    const reason = unstorable(value);
    return reason === undefined ? undefined : [column, reason];
  }
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) {
      const found = findUnstorable(item, `${column}[${i + 1}]`);
      if (found) return found;
    }
  } else if (typeof value === 'object' && value !== null && !(value instanceof Date)) {
    for (const [key, item] of Object.entries(value)) {
      const reason = unstorable(key);
      if (reason !== undefined) return [column, `has a field name that ${reason}`];
      const found = findUnstorable(item, `${column}.${key}`);
      if (found) return found;
    }
  }
  return undefined;
}

function defined(jobType: string, entries: [string, unknown][]): ContractArguments {
  const args = Object.fromEntries(entries.filter(([, value]) => value !== undefined));
  for (const [name, value] of Object.entries(args)) {
    const found = findUnstorable(value, name);
    if (found) {
      throw new EnqueueValidationError(`${jobType}: ${found[0]} ${found[1]}`, {
        jobType,
        column: found[0],
      });
    }
  }
  return args;
}

function shared(jobType: string, options: EnqueueManyOptions, source: string): [string, unknown][] {
  checkOptions(jobType, options);
  return [
    [ARGUMENTS.runAt, options.runAt],
    [ARGUMENTS.priority, options.priority],
    [ARGUMENTS.source, options.source ?? source],
    [ARGUMENTS.retry, options.retry === undefined ? undefined : toSql(RETRY_FIELDS, options.retry)],
    [ARGUMENTS.traceparent, options.traceparent],
    [ARGUMENTS.tracestate, options.tracestate],
  ];
}

/** broseph.enqueue's arguments for one job. */
export function oneJob(
  jobType: string,
  params: unknown,
  options: EnqueueOptions,
  source: string,
): ContractArguments {
  return defined(jobType, [
    [ARGUMENTS.jobType, jobType],
    [ARGUMENTS.params, paramsToSql(jobType, params)],
    [ARGUMENTS.idempotencyKey, options.idempotencyKey],
    ...shared(jobType, options, source),
  ]);
}

/** broseph.enqueue_many's arguments for a list of jobs of one type. */
export function manyJobs(
  jobType: string,
  params: readonly unknown[],
  options: EnqueueManyOptions,
  source: string,
): ContractArguments {
  return defined(jobType, [
    [ARGUMENTS.jobType, jobType],
    [ARGUMENTS.params, params.map((p) => paramsToSql(jobType, p))],
    [ARGUMENTS.idempotencyKeys, options.idempotencyKeys && [...options.idempotencyKeys]],
    ...shared(jobType, options, source),
  ]);
}
