"""The process pool behind grading: order kept; failures, dead and stuck workers are outcomes."""

from __future__ import annotations

import os
import signal
import time

from curio.evaluation import Outcome, TimeoutPool


def job(x: int) -> int:
    if x == 13:
        raise ValueError("unlucky")
    if x == 66:
        os._exit(3)  # the worker process dies outright
    if x == 77:
        signal.signal(signal.SIGALRM, signal.SIG_IGN)  # ignores the soft limit, like C code
        time.sleep(60)
    if x == 88:
        time.sleep(60)  # stopped by the soft limit
    return x * x


def test_results_keep_input_order_across_chunks_and_calls():
    with TimeoutPool(job, num_workers=2, timeout_s=5, chunk_size=3, start_method="fork") as pool:
        assert pool.map(list(range(100, 120))) == [Outcome(value=x * x) for x in range(100, 120)]
        assert pool.map([]) == []
        assert pool.map([4]) == [Outcome(value=16)]


def test_failures_are_outcomes_and_the_rest_of_the_batch_is_served():
    items = [1, 13, 2, 66, 3, 77, 4, 88, 5]
    with TimeoutPool(
        job, num_workers=2, timeout_s=0.5, grace_s=0.5, chunk_size=4, start_method="fork"
    ) as pool:
        started = time.monotonic()
        outcomes = pool.map(items)
        assert time.monotonic() - started < 5
        by_item = dict(zip(items, outcomes))
        assert by_item[13] == Outcome(error="ValueError: unlucky")
        assert by_item[66] == Outcome(error="WorkerDied: exit code 3")
        assert by_item[77] == Outcome(timed_out=True)
        assert by_item[88] == Outcome(timed_out=True)
        assert [by_item[x].value for x in (1, 2, 3, 4, 5)] == [1, 4, 9, 16, 25]
        # A worker killed from outside while idle is replaced on the next call.
        os.kill(pool._workers[0].process.pid, signal.SIGKILL)
        pool._workers[0].process.join()
        assert pool.map([6, 7, 8]) == [Outcome(value=36), Outcome(value=49), Outcome(value=64)]


def allocate(gib: int) -> int:
    return len(bytearray(gib * 2**30))


def test_runaway_allocation_becomes_a_memory_error():
    # 1 GiB against a 256 MiB cap; harmless even on a machine where the cap could not be set.
    # A worker forked from the grading server (the default), whose address space is small and
    # settled: one forked from a process that has run many tests may free more than the cap later.
    with TimeoutPool(allocate, num_workers=1, memory_limit_mb=256) as pool:
        assert pool.map([1]) == [Outcome(error="MemoryError: ")]
