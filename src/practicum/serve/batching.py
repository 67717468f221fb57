"""Dynamic micro-batching: requests that arrive together run as one batch on a worker thread.

    batcher = MicroBatcher("clf", run_jobs, max_batch=32, max_wait_s=0.005)
    batcher.start()
    result = await batcher.submit("predict", inputs)   # from the event loop

The worker takes the first waiting job, then gathers more until the batch holds max_batch
inputs or max_wait_s has passed since the first one, and calls run_jobs(jobs) once; run_jobs
sets each job's future (a result, or the error of that job alone). Under load the queue fills
while a batch runs, so the next batch starts full without waiting.

Strangers batched together do not share a fate: when run_jobs raises for a batch of several
jobs, each job is run again alone, so only the one whose inputs fail gets the error. A job
whose request was abandoned (its future cancelled before the worker took it) is skipped.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any

from practicum.errors import UserError

log = logging.getLogger(__name__)


@dataclass
class Job:
    """One request's share of a batch: its operation ("predict", "embed") and its inputs."""

    op: str
    items: list[Any]
    future: Future = field(default_factory=Future)
    prepared: Any = None
    """What run_jobs made of the items (decoded images, records) before the batch forward."""


class MicroBatcher:
    """A queue and one worker thread that runs `run_jobs(list[Job])` over gathered jobs."""

    def __init__(self, name: str, run_jobs: Callable[[list[Job]], None], max_batch: int,
                 max_wait_s: float, on_batch: Callable[[int], None] | None = None,
                 on_cancel: Callable[[int], None] | None = None) -> None:
        self.name, self.run_jobs = name, run_jobs
        self.max_batch, self.max_wait_s = max(1, max_batch), max(0.0, max_wait_s)
        self.on_batch, self.on_cancel = on_batch, on_cancel
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=f"batch-{self.name}", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the jobs already queued, then end the worker."""
        if self._thread is not None:
            self._stopping = True
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def submit_nowait(self, op: str, items: list[Any], prepared: Any = None) -> Future:
        if self._stopping or self._thread is None:
            raise RuntimeError(f"model {self.name} is not running (the server is shutting down)")
        job = Job(op, list(items), prepared=prepared)
        self._queue.put(job)
        return job.future

    async def submit(self, op: str, items: list[Any], prepared: Any = None) -> Any:
        """Queue a job and wait (without blocking the event loop) for its result. Cancelling
        the wait (the client left) cancels the job unless the worker has started it."""
        return await asyncio.wrap_future(self.submit_nowait(op, items, prepared))

    def _live(self, job: Job) -> bool:
        """Mark a taken job as running; False (and counted) when its request was cancelled."""
        if job.future.set_running_or_notify_cancel():
            return True
        if self.on_cancel is not None:
            self.on_cancel(len(job.items))
        return False

    def _gather(self, first: Job) -> tuple[list[Job], bool]:
        """first plus the jobs that join it; True when the stop marker was met."""
        jobs, size = [first], len(first.items)
        if not self._live(first):
            jobs, size = [], 0
        deadline = time.perf_counter() + self.max_wait_s
        while size < self.max_batch:
            left = deadline - time.perf_counter()
            try:
                job = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            if self._live(job):
                jobs.append(job)
                size += len(job.items)
        return jobs, False

    def _loop(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                break
            jobs, stop = self._gather(first)
            if not jobs:
                continue
            if self.on_batch is not None:
                self.on_batch(sum(len(j.items) for j in jobs))
            self._run(jobs)
        while True:  # after stop: anything still queued gets an error, not silence
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                settle(job.future, error=RuntimeError(f"model {self.name} stopped"))


    def _run(self, jobs: list[Job]) -> None:
        """run_jobs over the batch; when it fails, over each job alone."""
        try:
            self.run_jobs(jobs)
            return
        except Exception as exc:
            if len(jobs) == 1:
                _fail(self.name, jobs[0], exc)
                return
        for job in jobs:
            if job.future.done():
                continue
            try:
                self.run_jobs([job])
            except Exception as exc:
                _fail(self.name, job, exc)


def _fail(name: str, job: Job, exc: Exception) -> None:
    """Give a job its error. A refusal of its inputs (a 4xx) is the client's and logged by the
    route; anything else is the server's: logged here with its traceback."""
    if getattr(exc, "status", 500) >= 500 and not isinstance(exc, UserError):
        log.error("model %s failed on a %s request", name, job.op, exc_info=exc)
    settle(job.future, error=exc)


def settle(future: Future, value: Any = None, error: BaseException | None = None) -> None:
    """Set a future's result or error unless it is already done (its request was cancelled)."""
    if future.done():
        return
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)
    except InvalidStateError:  # cancelled between the check and the set
        pass
