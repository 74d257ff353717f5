"""A bounded queue in front of one engine, with dynamic batching, for the HTTP server.

Requests wait in a FIFO queue of at most ``max_queue`` entries (a full queue is refused at once, never
blocked on); one worker thread takes the oldest request plus every queued request with the same generation
settings, up to ``max_batch``, and runs them as one batched ``engine.generate`` call. Generation therefore
never runs on the event loop, and the number of concurrent generations is bounded by ``max_batch``.

A caller that stops waiting (its timeout or a dropped connection) cancels its request: if it has not started
it is skipped, and if it is generating its stop event ends its row at the next token, so abandoned requests do
not consume model time. Each request gets its own result: the engine's :meth:`~medmo.infer.engine.Engine.complete`
answers per request, and if a whole batch fails the worker runs its requests again one by one, so a bad request
fails alone. This is continuous
batching's simpler cousin (batch-level rather than token-level, as in Orca, OSDI 2022): enough for one
CPU or GPU process; large deployments should serve through vLLM's OpenAI server instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from medmo.infer.engine import Completion, complete, stream_text, word_counts


class QueueFull(RuntimeError):
    """The queue holds ``max_queue`` requests already; the server answers 503."""


@dataclass
class Job:
    conversation: list[dict]
    images: list[Any]
    gen: dict[str, Any]
    future: cf.Future = field(default_factory=cf.Future)  # resolves to a Completion
    on_piece: Callable[[str | None], None] | None = None  # streaming: text pieces, then None
    stop: threading.Event = field(default_factory=threading.Event)  # set to end generation early

    @property
    def key(self) -> tuple:
        return tuple(sorted(self.gen.items()))


class Scheduler:
    """Queue + batching worker around ``engine.generate``.

    Args:
        engine: an object with ``generate(conversations, images, **gen) -> list[str]``.
        max_batch: most requests generated together (the bound on concurrent generations).
        max_queue: most requests waiting; more are refused with :class:`QueueFull`.
    """

    def __init__(self, engine: Any, *, max_batch: int = 8, max_queue: int = 64) -> None:
        self.engine = engine
        self.max_batch = max(1, max_batch)
        self.max_queue = max(0, max_queue)
        self._queue: deque[Job] = deque()
        self._cond = threading.Condition()
        self._running = 0
        self._stop = False
        self.batches: deque[int] = deque(maxlen=10_000)  # sizes of the latest batches run, for tests and stats
        self._thread = threading.Thread(target=self._work, name="medmo-generate", daemon=True)
        self._thread.start()

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def running(self) -> int:
        return self._running

    def submit(self, conversation: list[dict], images: list[Any], **gen: Any) -> cf.Future:
        """Queue one request; its future resolves to a :class:`~medmo.infer.engine.Completion` (or its exception)."""
        return self._enqueue(Job(conversation, images, gen))

    def submit_stream(
        self, conversation: list[dict], images: list[Any], on_piece: Callable[[str | None], None],
        stop: threading.Event, **gen: Any,
    ) -> cf.Future:
        """Queue one streamed request: ``on_piece`` gets each text piece from the worker thread, then ``None``.

        Uses the engine's ``stream`` method when it has one (token by token), else sends its whole answer
        in word-sized pieces. Streamed requests run alone, never batched.
        """
        return self._enqueue(Job(conversation, images, gen, on_piece=on_piece, stop=stop))

    def _enqueue(self, job: Job) -> cf.Future:
        with self._cond:
            if self._stop:
                raise QueueFull("the server is shutting down")
            if len(self._queue) >= self.max_queue:  # drop requests whose callers gave up before counting
                self._queue = deque(j for j in self._queue if not j.future.cancelled())
            if len(self._queue) >= self.max_queue:
                raise QueueFull(
                    f"the server is busy: {len(self._queue)} requests are already waiting (limit {self.max_queue}); "
                    "retry shortly"
                )
            self._queue.append(job)
            self._cond.notify()
        return job.future

    async def run(
        self, conversation: list[dict], images: list[Any], *, timeout_s: float | None, **gen: Any
    ) -> Completion:
        """Submit and await the answer; on timeout or cancellation the request is withdrawn or stopped."""
        job = Job(conversation, images, gen)
        self._enqueue(job)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(job.future), timeout_s)
        finally:
            job.future.cancel()  # no-op once finished; skips the job if it is still queued
            job.stop.set()  # ends its generation at the next token if it is running

    def close(self) -> None:
        with self._cond:
            self._stop = True
            for job in self._queue:
                job.future.cancel()
            self._queue.clear()
            self._cond.notify_all()
        self._thread.join(timeout=5)

    # ------------------------------------------------------------------------------------ worker

    def _take_batch(self) -> list[Job]:
        with self._cond:
            while not self._queue and not self._stop:
                self._cond.wait()
            if self._stop:
                return []
            first = self._queue.popleft()
            batch = [first]
            rest: deque[Job] = deque()
            while self._queue and len(batch) < self.max_batch and first.on_piece is None:
                job = self._queue.popleft()
                (batch if job.key == first.key and job.on_piece is None else rest).append(job)
            self._queue.extendleft(reversed(rest))
            batch = [j for j in batch if j.future.set_running_or_notify_cancel()]
            self._running = len(batch)
            return batch

    def _work(self) -> None:
        while not self._stop:
            batch = self._take_batch()
            if not batch:
                continue
            self.batches.append(len(batch))
            try:
                if batch[0].on_piece is not None:
                    self._stream(batch[0])
                    continue
                for job, result in zip(batch, self._complete(batch)):
                    if job.future.done():
                        continue
                    if isinstance(result, BaseException):
                        job.future.set_exception(result)
                    else:
                        job.future.set_result(result)
            finally:
                self._running = 0

    def _complete(self, batch: list[Job]) -> list[Any]:
        """One result per job; when the batch as a whole fails, each job is run alone so only the culprit fails."""
        try:
            results = complete(self.engine, [j.conversation for j in batch], [j.images for j in batch],
                               stops=[j.stop for j in batch], **batch[0].gen)
            if len(results) != len(batch):
                raise RuntimeError(f"engine returned {len(results)} answers for {len(batch)} requests")
            return results
        except BaseException as e:  # noqa: BLE001 - every waiting request must learn of its own outcome
            if len(batch) == 1:
                return [e]
            return [cf.CancelledError() if j.stop.is_set() else self._complete([j])[0] for j in batch]

    def _stream(self, job: Job) -> None:
        """Send a streamed job's pieces; its future resolves to the :class:`Completion` (token counts)."""
        try:
            if hasattr(self.engine, "stream"):
                it, pieces = self.engine.stream(job.conversation, job.images, stop=job.stop, **job.gen), []
                while True:
                    try:
                        pieces.append(next(it))
                    except StopIteration as end:  # an engine's stream may return its Completion
                        done = end.value or word_counts([job.conversation], ["".join(pieces)],
                                                        job.gen.get("max_new_tokens", 256))[0]
                        break
                    job.on_piece(pieces[-1])  # raises RuntimeError if the client's event loop has closed
            else:
                done = complete(self.engine, [job.conversation], [job.images], stops=[job.stop], **job.gen)[0]
                if isinstance(done, BaseException):
                    raise done
                for piece in stream_text(done.text):
                    job.on_piece(piece)
            job.future.set_result(done)
        except BaseException as e:  # noqa: BLE001 - reported to the streaming client
            job.stop.set()  # end the engine's generation if it is still running
            job.future.set_exception(e)
        finally:
            with contextlib.suppress(RuntimeError):  # the client's event loop may be gone already
                job.on_piece(None)
