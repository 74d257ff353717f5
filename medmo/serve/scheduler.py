"""A bounded queue in front of one engine, with dynamic batching, for the HTTP server.

Requests wait in a FIFO queue of at most ``max_queue`` entries (a full queue is refused at once, never
blocked on); one worker thread takes the oldest request plus every queued request with the same generation
settings, up to ``max_batch``, and runs them as one batched ``engine.generate`` call. Generation therefore
never runs on the event loop, and the number of concurrent generations is bounded by ``max_batch``.

A caller that stops waiting (its timeout or a dropped connection) cancels its request; if the request has
not started yet it is skipped, so abandoned requests do not consume model time. This is continuous
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

from medmo.infer.engine import stream_text


class QueueFull(RuntimeError):
    """The queue holds ``max_queue`` requests already; the server answers 503."""


@dataclass
class Job:
    conversation: list[dict]
    images: list[Any]
    gen: dict[str, Any]
    future: cf.Future = field(default_factory=cf.Future)
    on_piece: Callable[[str | None], None] | None = None  # streaming: text pieces, then None
    stop: threading.Event | None = None  # streaming: set to end generation early

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
        """Queue one request; its future resolves to the answer text (or the engine's exception)."""
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

    async def run(self, conversation: list[dict], images: list[Any], *, timeout_s: float | None, **gen: Any) -> str:
        """Submit and await the answer; on timeout or cancellation the request is withdrawn if not started."""
        fut = self.submit(conversation, images, **gen)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), timeout_s)
        finally:
            fut.cancel()  # no-op once finished; skips the job if it is still queued

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
            if batch[0].on_piece is not None:
                self._stream(batch[0])
                continue
            try:
                answers = self.engine.generate([j.conversation for j in batch], [j.images for j in batch], **batch[0].gen)
                if len(answers) != len(batch):
                    raise RuntimeError(f"engine returned {len(answers)} answers for {len(batch)} requests")
                for job, answer in zip(batch, answers):
                    job.future.set_result(answer)
            except BaseException as e:  # noqa: BLE001 - every waiting request must learn of the failure
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(e)
            finally:
                self._running = 0

    def _stream(self, job: Job) -> None:
        pieces: list[str] = []
        try:
            if hasattr(self.engine, "stream"):
                it = self.engine.stream(job.conversation, job.images, stop=job.stop, **job.gen)
            else:
                it = stream_text(self.engine.generate([job.conversation], [job.images], **job.gen)[0])
            for piece in it:
                pieces.append(piece)
                job.on_piece(piece)  # raises RuntimeError if the client's event loop has closed
            job.future.set_result("".join(pieces))
        except BaseException as e:  # noqa: BLE001 - reported to the streaming client
            if job.stop is not None:
                job.stop.set()  # end the engine's generation if it is still running
            job.future.set_exception(e)
        finally:
            self._running = 0
            with contextlib.suppress(RuntimeError):  # the client's event loop may be gone already
                job.on_piece(None)
