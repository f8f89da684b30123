"""Shared fixtures for the evaluation tests: one grader pool for the whole session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from curio.evaluation import Grader


@pytest.fixture(scope="session")
def grader() -> Iterator[Grader]:
    # Short limits keep a pathological test item cheap; two workers match the CI machine.
    with Grader(num_workers=2, timeout_s=3.0, grace_s=1.0) as g:
        yield g
