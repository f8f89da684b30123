"""A process pool that runs one function over many items with a hard per-item time limit.

Symbolic math on model output can hang (``10^{10^{10^{10}}}`` makes SymPy build a
ten-billion-digit integer in C, where no signal can interrupt it) or exhaust memory. A grader must
neither hang nor die on such an item; it must score it and move on. So each item runs in a
long-lived worker process:

* a soft limit (``SIGALRM`` in the worker, which is its own main thread) interrupts Python-level
  work after ``timeout_s`` and keeps the worker;
* a hard limit kills a worker whose current item has run ``timeout_s + grace_s`` (C-level hangs),
  records that item as timed out and starts a replacement that carries on with the rest of the
  chunk;
* an address-space limit turns runaway allocations into a ``MemoryError`` inside the worker instead
  of the OOM killer picking a victim, and a worker that dies anyway costs only the item it was on.

Workers stay up between :meth:`TimeoutPool.map` calls, and items travel in chunks, so thousands of
items cost milliseconds of overhead rather than a process each.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import resource
import signal
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_READY = "ready"
_STARTUP_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Outcome(Generic[R]):
    """What running the function on one item gave.

    Attributes:
        value: the function's return value; None when it failed or timed out.
        error: ``"ExceptionType: message"`` when it raised or its worker died, else None.
        timed_out: whether the item hit the soft or the hard time limit.
    """

    value: R | None = None
    error: str | None = None
    timed_out: bool = False


def default_num_workers(cap: int = 16) -> int:
    """One worker per CPU this process may use, at most ``cap`` (each holds a SymPy import)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cap, cpus))


class _SoftTimeout(BaseException):
    """Raised by SIGALRM in a worker.

    A BaseException so that libraries' ``except Exception`` blocks do not swallow it; math-verify
    catches even its own BaseException timeout, hence the ``fired`` flag as a second witness.
    """


class _Alarm:
    """Per-item soft time limit in a worker process."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.armed = False
        self.fired = False
        signal.signal(signal.SIGALRM, self._on_alarm)

    def _on_alarm(self, signum: int, frame: Any) -> None:
        # A signal delivered just after the item finished must not hit the next pipe write.
        if self.armed:
            self.fired = True
            raise _SoftTimeout

    def run(self, fn: Callable[[T], R], item: T) -> Outcome[R]:
        self.fired = False
        try:
            try:
                self.armed = True
                signal.setitimer(signal.ITIMER_REAL, self.seconds)
                outcome: Outcome[R] = Outcome(value=fn(item))
            except Exception as exc:  # noqa: BLE001 -- any failure is a scored outcome
                outcome = Outcome(error=f"{type(exc).__name__}: {exc}"[:500])
            finally:
                self.armed = False
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _SoftTimeout:
            return Outcome(timed_out=True)
        return Outcome(timed_out=True) if self.fired else outcome


def _limit_address_space(extra_mb: int | None) -> None:
    """Cap this process's address space at its current size plus ``extra_mb``.

    Relative to the current size because a forked worker inherits its parent's mappings, which
    can be large (CUDA), while the item itself only needs headroom.
    """
    if extra_mb is None:
        return
    try:
        with open("/proc/self/statm") as f:
            current = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # no procfs: run without the cap
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = current + extra_mb * 2**20
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _worker_main(
    conn: multiprocessing.connection.Connection,
    fn: Callable[[Any], Any],
    timeout_s: float,
    memory_limit_mb: int | None,
) -> None:
    # Ctrl-C is the parent's to handle; it then terminates the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _limit_address_space(memory_limit_mb)
    alarm = _Alarm(timeout_s)
    conn.send(_READY)
    while True:
        try:
            chunk = conn.recv()
        except EOFError:
            return
        if chunk is None:
            return
        for index, item in chunk:
            conn.send((index, alarm.run(fn, item)))


class _Worker:
    """Parent-side handle: the process, its pipe and the items it still owes."""

    def __init__(self, process: multiprocessing.process.BaseProcess, conn: Any) -> None:
        self.process = process
        self.conn = conn
        self.owed: deque[tuple[int, Any]] = deque()
        self.since = 0.0  # when the item at the head of ``owed`` started (or the last result came)

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()


def _stop_all(workers: list[_Worker]) -> None:
    for worker in workers:
        worker.stop()
    workers.clear()


class TimeoutPool(Generic[T, R]):
    """Run ``fn`` over items in worker processes; no item can hang or crash the caller.

    Args:
        fn: a module-level (picklable) function of one item.
        num_workers: worker processes; default one per usable CPU, at most 16.
        timeout_s: soft per-item limit.
        grace_s: extra time before a worker stuck in C code is killed.
        memory_limit_mb: per-worker address-space headroom; None for no cap.
        start_method: ``"forkserver"`` (default: workers fork from a clean server that imported
            ``fn``'s module once, so restarts are cheap and the parent's threads and CUDA state are
            never copied), ``"spawn"`` or ``"fork"``.
        chunk_size: items sent to a worker at a time.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        fn: Callable[[T], R],
        num_workers: int | None = None,
        timeout_s: float = 10.0,
        grace_s: float = 5.0,
        memory_limit_mb: int | None = 4096,
        start_method: str = "forkserver",
        chunk_size: int = 8,
    ) -> None:
        if timeout_s <= 0 or grace_s < 0:
            raise ValueError(f"need timeout_s > 0 and grace_s >= 0, got {timeout_s}, {grace_s}")
        self.fn = fn
        self.num_workers = num_workers or default_num_workers()
        self.timeout_s = timeout_s
        self.grace_s = grace_s
        self.memory_limit_mb = memory_limit_mb
        self.chunk_size = chunk_size
        self._ctx = multiprocessing.get_context(start_method)
        if start_method == "forkserver":
            self._ctx.set_forkserver_preload([fn.__module__])
        self._workers: list[_Worker] = []
        self._finalizer = weakref.finalize(self, _stop_all, self._workers)

    def __enter__(self) -> TimeoutPool[T, R]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop all workers. The pool restarts them if used again."""
        for worker in self._workers:
            try:
                worker.conn.send(None)
            except OSError:
                pass
        _stop_all(self._workers)

    def _start_worker(self) -> _Worker:
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=_worker_main,
            args=(child_conn, self.fn, self.timeout_s, self.memory_limit_mb),
            daemon=True,
        )
        process.start()
        child_conn.close()
        return _Worker(process, parent_conn)

    def _await_ready(self, worker: _Worker) -> None:
        """Fail loudly when a worker cannot even start: that is a broken setup, not a bad item."""
        try:
            if worker.conn.poll(_STARTUP_TIMEOUT_S) and worker.conn.recv() == _READY:
                return
        except (EOFError, OSError):
            pass
        worker.stop()
        raise RuntimeError(
            f"a worker process for {self.fn.__module__}.{self.fn.__qualname__} failed to start "
            f"(exit code {worker.process.exitcode})"
        )

    def _restart(self, worker: _Worker) -> _Worker:
        """Replace ``worker`` (dead, stuck or just killed) by a fresh one in the same slot."""
        worker.stop()
        fresh = self._start_worker()
        self._await_ready(fresh)
        self._workers[self._workers.index(worker)] = fresh
        return fresh

    def _retire(
        self,
        worker: _Worker,
        outcome: Outcome[R],
        results: list[Outcome[R] | None],
        queue: deque[list[tuple[int, T]]],
    ) -> None:
        """Charge ``outcome`` to the item ``worker`` was on; requeue the rest; restart it."""
        index, _ = worker.owed.popleft()
        results[index] = outcome
        if worker.owed:
            queue.appendleft(list(worker.owed))
        worker.owed.clear()
        self._restart(worker)

    def map(self, items: Sequence[T]) -> list[Outcome[R]]:
        """Outcomes for ``items``, in order. Never raises for a bad item."""
        if not items:
            return []
        if not self._workers:
            started = [self._start_worker() for _ in range(self.num_workers)]
            self._workers.extend(started)
            for worker in started:
                self._await_ready(worker)
        try:
            return self._map(items)
        except BaseException:
            # Interrupted (Ctrl-C) or broken: workers may hold half-done chunks, so start afresh.
            self.close()
            raise

    def _map(self, items: Sequence[T]) -> list[Outcome[R]]:
        results: list[Outcome[R] | None] = [None] * len(items)
        queue: deque[list[tuple[int, T]]] = deque(
            [(i, items[i]) for i in range(start, min(start + self.chunk_size, len(items)))]
            for start in range(0, len(items), self.chunk_size)
        )
        hard_limit = self.timeout_s + self.grace_s
        while queue or any(worker.owed for worker in self._workers):
            for worker in list(self._workers):
                if not worker.owed and queue:
                    if not worker.process.is_alive():  # died while idle, e.g. killed from outside
                        worker = self._restart(worker)
                    chunk = queue.popleft()
                    worker.conn.send(chunk)
                    worker.owed.extend(chunk)
                    worker.since = time.monotonic()
            busy = {worker.conn: worker for worker in self._workers if worker.owed}
            deadline = min(worker.since for worker in busy.values()) + hard_limit
            ready = multiprocessing.connection.wait(
                list(busy), timeout=max(0.0, deadline - time.monotonic())
            )
            for conn in ready:
                worker = busy[conn]
                try:
                    index, outcome = conn.recv()
                except (EOFError, OSError):
                    worker.process.join(timeout=5)
                    died = Outcome(error=f"WorkerDied: exit code {worker.process.exitcode}")
                    self._retire(worker, died, results, queue)
                    continue
                expected, _ = worker.owed.popleft()
                assert index == expected, f"worker answered item {index}, owed {expected}"
                results[index] = outcome
                worker.since = time.monotonic()
            now = time.monotonic()
            for worker in busy.values():
                if worker.owed and now - worker.since > hard_limit:
                    self._retire(worker, Outcome(timed_out=True), results, queue)
        return results  # type: ignore[return-value]  # the loop ends once every item has an outcome
