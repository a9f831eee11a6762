// The RPC form: the same enqueue through supabase.rpc (PostgREST), for code that holds a
// service_role Supabase client rather than a database connection.
//
// Supabase's API exposes the public schema only; migrations/0017 adds public.broseph_enqueue and
// public.broseph_enqueue_many, thin SECURITY DEFINER wrappers of the contract executable by
// service_role only. Each call is its own transaction (PostgREST's): to enqueue together with
// your own rows, write them in the same database function, or use the node-postgres form.

import {
  manyJobs,
  oneJob,
  type ContractArguments,
  type EnqueueManyOptions,
  type EnqueueOptions,
} from './arguments.js';
import { INVALID_PARAMETER_VALUE, translate } from './errors.js';
import type { JobParams, JobType } from './generated/jobs.js';

/** PostgREST's error object, as supabase-js returns it. */
export interface RpcErrorLike {
  message: string;
  code?: string;
  details?: string | null;
  hint?: string | null;
}

/** Anything with supabase-js's `rpc(fn, args)`: a SupabaseClient, a PostgrestClient. */
export interface RpcClient {
  rpc(
    fn: string,
    args?: Record<string, unknown>,
  ): PromiseLike<{ data: unknown; error: RpcErrorLike | null }>;
}

/** An RPC call failed for another reason than a bad argument (permission, network, …). */
export class EnqueueRpcError extends Error {
  override readonly name = 'EnqueueRpcError';
  readonly code: string | undefined;
  readonly details: string | null | undefined;
  readonly hint: string | null | undefined;

  constructor(error: RpcErrorLike) {
    super(error.message, { cause: error });
    this.code = error.code;
    this.details = error.details;
    this.hint = error.hint;
  }
}

/** The RPC wrappers' names (public schema). */
export const RPC_FUNCTIONS = {
  enqueue: 'broseph_enqueue',
  enqueueMany: 'broseph_enqueue_many',
} as const;

function asJson(args: ContractArguments): Record<string, unknown> {
  const out: Record<string, unknown> = { ...args };
  if (out['run_at'] instanceof Date) out['run_at'] = out['run_at'].toISOString();
  return out;
}

async function call(
  client: RpcClient,
  jobType: string,
  fn: string,
  args: ContractArguments,
): Promise<unknown> {
  const { data, error } = await client.rpc(fn, asJson(args));
  if (error) {
    if (error.code === INVALID_PARAMETER_VALUE) throw translate(error, jobType);
    throw new EnqueueRpcError(error);
  }
  return data;
}

/** enqueue through `public.broseph_enqueue`; resolves to the record id. */
export async function enqueueRpc<T extends JobType>(
  client: RpcClient,
  jobType: T,
  params: JobParams[T],
  options: EnqueueOptions = {},
): Promise<string> {
  const args = oneJob(jobType, params, options, 'rpc');
  return (await call(client, jobType, RPC_FUNCTIONS.enqueue, args)) as string;
}

/** enqueueMany through `public.broseph_enqueue_many`; record ids in input order. */
export async function enqueueManyRpc<T extends JobType>(
  client: RpcClient,
  jobType: T,
  params: readonly JobParams[T][],
  options: EnqueueManyOptions = {},
): Promise<string[]> {
  const args = manyJobs(jobType, params, options, 'rpc');
  return (await call(client, jobType, RPC_FUNCTIONS.enqueueMany, args)) as string[];
}
