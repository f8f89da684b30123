"""What ``train.py`` and ``eval.py`` share: user errors become one line and exit status 2.

Light on purpose (no torch): the command-line checks run before anything heavy is imported.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from curio.errors import UserError

log = logging.getLogger("curio")
T = TypeVar("T")


def user_error(err: BaseException | None) -> UserError | None:
    """The UserError behind ``err``, if any (Hydra's instantiate wraps constructor errors)."""
    while err is not None:
        if isinstance(err, UserError):
            return err
        err = err.__cause__ or err.__context__
    return None


def run_task(task: Callable[..., T], *args: Any) -> T:
    """Run a Hydra task body; a user error is logged as one line (also to the run's log file)."""
    try:
        return task(*args)
    except Exception as err:
        found = user_error(err)
        if found is None:
            raise
        log.error("error: %s", found)
        sys.exit(2)


def run_precheck(precheck: Callable[[list[str]], T], argv: list[str]) -> T:
    """Run the command-line checks before Hydra starts; a user error is printed as one line."""
    try:
        return precheck(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
