// Errors of the enqueue contract as typed errors naming the caller's field.
//
// broseph.enqueue raises SQLSTATE 22023 (invalid_parameter_value) for a bad argument. Where the
// database names the argument in the error's COLUMN field (node-postgres: `error.column`; through
// the RPC wrapper also a "column: <name>" line in the detail, which PostgREST passes on) that
// name is used; otherwise it is read from the message, whose form the contract has kept since
// migrations/0004: `<JobType>: missing field "local_date"`, `… field "group_id" must be …`,
// `… unknown field "x" (allowed: …)`, `unknown job type "X" (known: …)`.

import { columnToField } from './names.js';

/** SQLSTATE invalid_parameter_value: what the contract raises for a bad argument. */
export const INVALID_PARAMETER_VALUE = '22023';

/** What node-postgres's DatabaseError and PostgREST's error object have in common with us. */
export interface DatabaseErrorLike {
  code?: string;
  message: string;
  /** node-postgres: the error's COLUMN field. */
  column?: string;
  /** node-postgres: DETAIL. */
  detail?: string;
  /** PostgREST / supabase-js: DETAIL. */
  details?: string | null;
  hint?: string | null;
}

/** A bad argument to enqueue: the contract (or this client) refused it, nothing was enqueued. */
export class EnqueueValidationError extends Error {
  override readonly name = 'EnqueueValidationError';
  /** SQLSTATE 22023. */
  readonly code = INVALID_PARAMETER_VALUE;
  /** The job type the call named. */
  readonly jobType: string;
  /**
   * The caller's name of the faulty argument: `params.groupId`, `params.data.promptId`,
   * `params[2].localDate` (enqueueMany), `runAt`, `priority`, `idempotencyKey`,
   * `retry.maxAttempts`, `jobType`, … — undefined when the database did not say.
   */
  readonly field: string | undefined;
  /** The same in the contract's names (`params.group_id`, `run_at`, …), as the database said it. */
  readonly column: string | undefined;
  /** enqueueMany: 0-based position of the faulty element, when the error names one. */
  readonly index: number | undefined;

  constructor(
    message: string,
    details: { jobType: string; column?: string | undefined },
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.jobType = details.jobType;
    this.column = details.column;
    const location = details.column ? columnToField(details.jobType, details.column) : undefined;
    this.field = location?.field;
    this.index = location?.index;
  }
}

const MESSAGE_COLUMNS: ReadonlyArray<[RegExp, (m: RegExpExecArray) => string]> = [
  [/^unknown job type "/, () => 'job_type'],
  [/^[^:"]+: (?:missing field|unknown field|field) "([^"]+)"/, (m) => inParams(m[1]!)],
  [/^[^:"]+: (\S+?)\.? must be a JSON (?:object|array)/, (m) => inParams(m[1]!)],
  [/^[^:"]+: \d+ idempotency keys for \d+ params/, () => 'idempotency_keys'],
];

/** A params path from a message (`group_id`, `data.`, `params[2].local_date`) as a column. */
function inParams(path: string): string {
  return path === 'params' || path.startsWith('params[') ? path : `params.${path}`;
}

/** The column an error names: its COLUMN field, a "column: …" detail line, or its message. */
export function columnOf(error: DatabaseErrorLike): string | undefined {
  if (error.column) return error.column;
  const detail = error.detail ?? error.details ?? '';
  const fromDetail = /(?:^|\n)column: (\S+)$/.exec(detail);
  if (fromDetail) return fromDetail[1];
  for (const [pattern, column] of MESSAGE_COLUMNS) {
    const match = pattern.exec(error.message);
    if (match) return column(match);
  }
  return undefined;
}

function isDatabaseError(error: unknown): error is DatabaseErrorLike {
  return (
    typeof error === 'object' &&
    error !== null &&
    typeof (error as { message?: unknown }).message === 'string'
  );
}

/** The contract's 22023 as an EnqueueValidationError; anything else unchanged. */
export function translate(error: unknown, jobType: string): unknown {
  if (!isDatabaseError(error) || error.code !== INVALID_PARAMETER_VALUE) return error;
  return new EnqueueValidationError(
    error.message,
    { jobType, column: columnOf(error) },
    { cause: error },
  );
}
