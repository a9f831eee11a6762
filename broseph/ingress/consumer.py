"""
BullMQ's consuming loop, batched and chained: bullmq behind one checked seam.

The Python bullmq `Worker` hands one job at a time to a processor and completes it with
`moveToFinished` *without* fetching the next (`fetch_next=False`): two Lua calls per job, one
round trip each on one shared connection. BullMQ's Node worker completes a job and takes the
next one in the same `moveToFinished` call. This consumer does what Node does, a batch at a time:

    take a batch (lanes of up to `batch_size` jobs) → hand it to the ingress, which commits it to
    Postgres (one statement) → complete every job of it with `moveToFinished(fetch next)`, all in
    one pipelined round trip → the jobs those calls return are the next batch.

So the commit still precedes every ack ("commit, then ack"), and each job costs one Lua call.
Jobs held — fetched, being committed, waiting for their ack — are tracked by bullmq's own
`LockManager` (their locks renewed until acked) and bullmq's stalled-job check runs as in its
Worker, so a crashed ingress's jobs are redelivered (the receipt turns that into a duplicate).

Everything else is bullmq's: a `Worker` built without a processor (it never runs its own loop)
owns the connections, the options, `getNextJob` (the blocking wait on the queue's marker when it
is drained, delayed jobs), `nextJobFromJobData` (a Job from a fetched hash, job schedulers),
`LockManager`, `runStalledJobsCheck`, `pause` and `close`; `Scripts` builds `moveToFinished`'s
arguments; `Job.moveToFailed` applies the producer's attempts and backoff. Every one of these is
checked when a consumer is built (`IncompatibleBullMQ`, naming what changed).
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import bullmq
from bullmq import scripts as bullmq_scripts
from bullmq import timer as bullmq_timer

# The handler's verdict per job: a return value (complete it), DelayedError (the handler moved
# it already), or any other exception (`Job.moveToFailed`: BullMQ retries it per the producer's
# attempts and backoff, or fails it — at once for UnrecoverableError).
Verdict = dict[str, Any] | BaseException
Handler = Callable[[list[Any]], Awaitable[Sequence[Verdict]]]


class IncompatibleBullMQ(RuntimeError):
    """
    The installed bullmq differs from what this module was written against.
    """


# Worker methods and attributes used, with the parameters passed to each (bullmq 3.4).
_WORKER_METHODS: dict[str, tuple[str, ...]] = {
    "getNextJob": ("token",),
    "moveToActive": ("token",),
    "nextJobFromJobData": ("job_data", "job_id", "limit_until", "delay_until", "token"),
    "runStalledJobsCheck": (),
    "pause": (),
    "close": (),
    "on": ("event_name", "function"),
    "emit": ("event_name",),
}
_SCRIPTS_METHODS: dict[str, tuple[str, ...]] = {
    "moveToCompletedArgs": ("job", "return_value", "shouldRemove", "token", "fetchNext"),
    "finishedErrors": ("opts",),
}
_LOCK_MANAGER_METHODS: dict[str, tuple[str, ...]] = {
    "start": (),
    "track_job": ("job_id", "token", "ts"),
    "untrack_job": ("job_id",),
    "close": (),
}


def _parameters(function: Any) -> list[str]:
    return [p for p in inspect.signature(function).parameters if p != "self"]


def _missing(owner: type, methods: dict[str, tuple[str, ...]]) -> list[str]:
    problems = []
    for name, passed in methods.items():
        method = getattr(owner, name, None)
        if method is None:
            problems.append(f"{owner.__name__}.{name} is gone")
        elif not set(passed) <= set(_parameters(method)):
            problems.append(f"{owner.__name__}.{name} no longer takes {', '.join(passed)}")
    return problems


def check_internals() -> None:
    """
    Raise IncompatibleBullMQ when anything this module relies on in bullmq changed.
    """
    problems = [
        *_missing(bullmq.Worker, _WORKER_METHODS),
        *_missing(bullmq_scripts.Scripts, _SCRIPTS_METHODS),
        *_missing(bullmq.LockManager, _LOCK_MANAGER_METHODS),
        *_missing(bullmq.Job, {"moveToFailed": ("err", "token")}),
    ]
    if not callable(getattr(bullmq_scripts, "raw2NextJobData", None)):
        problems.append("bullmq.scripts.raw2NextJobData is gone")
    if _parameters(bullmq_timer.Timer)[:3] != ["interval", "callback", "emit_callback"]:
        problems.append("bullmq.timer.Timer now takes other arguments")
    # moveToFinished's ARGV[6] "fetch next?": the chained completion this module is about.
    args = inspect.getsource(bullmq_scripts.Scripts.moveToFinishedArgs)
    if 'fetchNext and "1" or ""' not in args:
        problems.append("Scripts.moveToFinishedArgs passes fetchNext differently")
    if problems:
        raise IncompatibleBullMQ(
            f"bullmq {bullmq.__version__} differs from what broseph/ingress/consumer.py was"
            f" written against (3.4): {'; '.join(problems)} — update broseph/ingress/consumer.py"
            " or install bullmq 3.4"
        )


def _check_worker(worker: Any) -> None:
    # What a Worker instance must carry (set in its __init__, so checked on one).
    problems = [
        f"Worker.{name} is gone"
        for name in ("client", "scripts", "lockManager", "opts", "id")
        if getattr(worker, name, None) is None
    ]
    if not problems and "moveToFinished" not in getattr(worker.scripts, "commands", {}):
        problems.append("its moveToFinished script is gone")
    if not problems and not callable(getattr(worker.client, "pipeline", None)):
        problems.append("Worker.client is no longer a Redis client")
    if problems:
        raise IncompatibleBullMQ(
            f"bullmq {bullmq.__version__} differs from what broseph/ingress/consumer.py was"
            f" written against (3.4): {'; '.join(problems)} — update broseph/ingress/consumer.py"
            " or install bullmq 3.4"
        )


def lane_sizes(held: int, batch_size: int) -> list[int]:
    """
    `held` jobs as lanes of at most `batch_size`, as even as can be; at least two lanes (when
    two jobs may be held), so that one lane's Postgres commit overlaps the other's Redis acks.
    """
    lanes = max(-(-held // batch_size), min(2, held))
    size, extra = divmod(held, lanes)
    return [size + 1 if lane < extra else size for lane in range(lanes)]


class BatchConsumer:
    """
    Consumes one BullMQ queue: up to `held` jobs at once, in lanes of up to `batch_size` that
    run side by side (one lane's Postgres commit overlaps another's Redis round trip).
    """

    def __init__(
        self,
        queue: str,
        options: dict[str, Any],
        handle: Handler,
        *,
        held: int,
        batch_size: int,
        retry_delay: float,
    ) -> None:
        check_internals()
        self.name = queue
        self.handle = handle
        self.retry_delay = retry_delay
        self.lanes = lane_sizes(held, batch_size)
        # No processor: bullmq's Worker never starts its own loop; it is this loop's toolbox.
        self.worker = bullmq.Worker(queue, None, {**options, "autorun": False})  # type: ignore[arg-type]
        _check_worker(self.worker)
        self._tokens = itertools.count(1)
        self._stopping = asyncio.Event()
        # One lane at a time waits for new jobs: bullmq's marker wait is one per worker, and a
        # second lane asking meanwhile would get "nothing" at once, again and again.
        self._fetching = asyncio.Lock()

    def on(self, event: str, listener: Callable[..., Any]) -> None:
        self.worker.on(event, listener)

    async def run(self) -> None:
        """
        Consume until `stop()`; returns once every job taken is committed and acked.
        """
        worker = self.worker
        worker.lockManager.start()
        stalled = bullmq_timer.Timer(
            worker.opts["stalledInterval"] / 1000, worker.runStalledJobsCheck, worker.emit
        )
        try:
            async with asyncio.TaskGroup() as lanes:
                for size in self.lanes:
                    lanes.create_task(self._lane(size))
        finally:
            stalled.stop()
            await worker.lockManager.close()

    async def stop(self) -> None:
        """
        Take nothing more (a lane waiting for jobs stops waiting); batches held finish.
        """
        self._stopping.set()
        await self.worker.pause()

    async def close(self) -> None:
        await self.worker.close()

    # --- one lane ------------------------------------------------------------------------------

    async def _lane(self, size: int) -> None:
        held: list[Any] = []
        more = False  # the last fetch found a job: the queue may have more waiting
        while not (self._stopping.is_set() and not held):
            if not held and not self._stopping.is_set():
                job = await self._next()
                if job is None:
                    continue
                held, more = [job], True
            while more and len(held) < size and not self._stopping.is_set():
                job = await self._take_now()
                if job is None:
                    more = False
                else:
                    held.append(job)
            taken = len(held)
            held = await self._process(held)
            # Every completion brought a next job: the queue has more; else it ran dry.
            more = len(held) == taken

    async def _next(self) -> Any:
        """
        The next job, waiting for one while the queue is empty (bullmq's getNextJob: a blocking
        wait on the queue's marker, at most its drainDelay); None when there was none.
        """
        async with self._fetching:
            if self._stopping.is_set():
                return None
            try:
                job = await self.worker.getNextJob(self._token())
            except Exception as exc:  # Redis unreachable, say: say so and try again later
                self.worker.emit("error", exc)
                try:
                    await asyncio.wait_for(self._stopping.wait(), timeout=self.retry_delay)
                except TimeoutError:
                    pass
                return None
        return self._track(job)

    async def _take_now(self) -> Any:
        """
        A waiting job, without waiting (one moveToActive); None when none is waiting.
        """
        try:
            job = await self.worker.moveToActive(self._token())
        except Exception as exc:  # the batch goes ahead with the jobs it has
            self.worker.emit("error", exc)
            return None
        return self._track(job)

    def _token(self) -> str:
        return f"{self.worker.id}:{next(self._tokens)}"

    def _track(self, job: Any) -> Any:
        if job is None:
            return None
        # As bullmq's Worker.processJob does: the worker's retention unless the job has its own.
        for option in ("removeOnComplete", "removeOnFail"):
            if option not in job.opts and option in self.worker.opts:
                job.opts[option] = self.worker.opts[option]
        self.worker.lockManager.track_job(job.id, job.token, int(time.time() * 1000))
        return job

    async def _process(self, held: list[Any]) -> list[Any]:
        """
        Hand the batch over (the handler commits it), then complete it; the next batch back.
        """
        deferred = [job for job in held if job.deferredFailure]
        ready = [job for job in held if not job.deferredFailure]
        verdicts: Sequence[Verdict] = await self.handle(ready) if ready else []
        done = [(job, v) for job, v in zip(ready, verdicts, strict=True) if isinstance(v, dict)]
        failed: list[tuple[Any, BaseException]] = [
            (job, v) for job, v in zip(ready, verdicts, strict=True) if not isinstance(v, dict)
        ]
        failed += [(job, bullmq.UnrecoverableError(job.deferredFailure)) for job in deferred]
        try:
            following = await self._complete(done)
            for job, error in failed:
                await self._fail(job, error)
        finally:
            for job in held:
                self.worker.lockManager.untrack_job(job.id)
        return [self._track(job) for job in following if job is not None]

    async def _complete(self, done: list[tuple[Any, dict[str, Any]]]) -> list[Any]:
        """
        moveToFinished for every committed job, pipelined: one round trip for the batch. Each
        call also takes the next waiting job (locked with the same token) unless stopping.
        """
        if not done:
            return []
        worker = self.worker
        fetch_next = not self._stopping.is_set()
        move = worker.scripts.commands["moveToFinished"]
        async with worker.client.pipeline(transaction=False) as pipe:
            for job, value in done:
                keys, args = worker.scripts.moveToCompletedArgs(
                    job, value, job.opts.get("removeOnComplete", False), job.token, fetch_next
                )
                await move(keys=keys, args=args, client=pipe)
            try:
                replies = await pipe.execute(raise_on_error=False)
            except Exception as exc:
                # Not acked: the locks lapse and the stalled-job check gives these jobs back;
                # their receipts make the redelivery a duplicate.
                worker.emit("error", exc)
                return []
        following = []
        for (job, _), reply in zip(done, replies, strict=True):
            if isinstance(reply, Exception):
                worker.emit("error", reply)
            elif isinstance(reply, int) and reply < 0:
                # The lock was lost (the job was given back meanwhile): redelivered, a duplicate.
                worker.emit(
                    "error",
                    worker.scripts.finishedErrors(
                        {"code": reply, "jobId": job.id, "command": "moveToFinished"}
                    ),
                )
            elif reply:
                data, job_id, limit_until, delay_until = bullmq_scripts.raw2NextJobData(reply)
                following.append(
                    await worker.nextJobFromJobData(
                        data, job_id, limit_until or 0, delay_until or 0, job.token
                    )
                )
        return following

    async def _fail(self, job: Any, error: BaseException) -> None:
        if isinstance(error, bullmq.DelayedError):
            return  # the handler moved it (Job.moveToDelayed)
        try:
            await job.moveToFailed(error, job.token)
        except Exception as exc:
            self.worker.emit("error", exc)
