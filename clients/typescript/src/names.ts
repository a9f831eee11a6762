// camelCase in TypeScript, the contract's snake_case in SQL: the translation both ways.
//
// Params use the generated FIELD_NAMES (from the payload models); enqueue's own arguments and
// the retry override are the SQL functions' signature, written once here.

import { FIELD_NAMES, type FieldMap, type JobType } from './generated/jobs.js';

/** enqueue's options → the arguments of broseph.enqueue / broseph.enqueue_many. */
export const ARGUMENTS = {
  jobType: 'job_type',
  params: 'params',
  idempotencyKey: 'idempotency_key',
  idempotencyKeys: 'idempotency_keys',
  runAt: 'run_at',
  priority: 'priority',
  source: 'source',
  retry: 'retry',
  traceparent: 'traceparent',
  tracestate: 'tracestate',
} as const;

/** The keys of the contract's `retry` argument (the producer's retry budget). */
export const RETRY_FIELDS: FieldMap = {
  maxAttempts: 'max_attempts',
  backoffSeconds: 'backoff_seconds',
  backoffType: 'backoff_type',
};

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * A value with its known camelCase keys renamed to the contract's names, nested objects too.
 * Unknown keys pass through unchanged, so the contract rejects them by the name the caller
 * wrote; anything that is not an object passes through for the contract to reject.
 */
export function toSql(map: FieldMap, value: unknown): unknown {
  if (Array.isArray(value)) return value.map((item) => toSql(map, item));
  if (!isPlainObject(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    const entry = Object.prototype.hasOwnProperty.call(map, key) ? map[key] : undefined;
    if (entry === undefined) out[key] = item;
    else if (typeof entry === 'string') out[entry] = item;
    else out[entry[0]] = toSql(entry[1], item);
  }
  return out;
}

/** The params of a job type in the contract's names. */
export function paramsToSql(jobType: JobType | string, params: unknown): unknown {
  const map = Object.prototype.hasOwnProperty.call(FIELD_NAMES, jobType)
    ? FIELD_NAMES[jobType as JobType]
    : {};
  return toSql(map, params);
}

function camel(name: string): string {
  return name.replace(/_+([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** Path segments in the contract's names → the caller's names (unknown ones unchanged). */
function segmentsToTs(map: FieldMap | undefined, segments: string[]): string[] {
  const out: string[] = [];
  let current = map;
  for (const segment of segments) {
    const found = current
      ? Object.entries(current).find(([, v]) => (typeof v === 'string' ? v : v[0]) === segment)
      : undefined;
    if (!found) {
      out.push(segment);
      current = undefined;
      continue;
    }
    out.push(found[0]);
    current = typeof found[1] === 'string' ? undefined : found[1][1];
  }
  return out;
}

/** Where a contract's column points: the caller's field path and, for a list, the index. */
export interface FieldLocation {
  /** The caller's name: `params.groupId`, `params[1].data.promptId`, `runAt`, `retry.maxAttempts`. */
  field: string;
  /** 0-based position in enqueueMany's list, when the column names one element. */
  index?: number;
}

const COLUMN = /^([A-Za-z_][A-Za-z0-9_]*)(?:\[(\d+)\])?(?:\.(.+))?$/;

/**
 * The caller's name for a column of the contract (`params.group_id`, `params[2].local_date`,
 * `run_at`, `retry.max_attempts`, …). SQL positions count from 1, JavaScript's from 0.
 */
export function columnToField(jobType: string, column: string): FieldLocation {
  const match = COLUMN.exec(column);
  if (!match) return { field: column };
  const [, head, position, rest] = match as unknown as [string, string, string?, string?];
  const argument = Object.entries(ARGUMENTS).find(([, sql]) => sql === head)?.[0] ?? camel(head);
  const map =
    head === 'params'
      ? Object.prototype.hasOwnProperty.call(FIELD_NAMES, jobType)
        ? FIELD_NAMES[jobType as JobType]
        : undefined
      : head === 'retry'
        ? RETRY_FIELDS
        : undefined;
  const index = position === undefined ? undefined : Number(position) - 1;
  const path = rest === undefined ? [] : segmentsToTs(map, rest.split('.'));
  const field =
    argument + (index === undefined ? '' : `[${index}]`) + path.map((s) => `.${s}`).join('');
  return index === undefined ? { field } : { field, index };
}
