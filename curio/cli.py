"""What ``train.py`` and ``eval.py`` share: building objects from config nodes, saving the run's
config, and user errors as one line with exit status 2.

Light on purpose (no torch): the command-line checks run before anything heavy is imported.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from curio.config import redact
from curio.errors import ConfigError, UserError

log = logging.getLogger("curio")
T = TypeVar("T")


def user_error(err: BaseException | None) -> UserError | None:
    """The UserError behind ``err``, if any (Hydra's instantiate wraps constructor errors)."""
    while err is not None:
        if isinstance(err, UserError):
            return err
        err = err.__cause__ or err.__context__
    return None


@contextmanager
def config_errors(key: str) -> Iterator[None]:
    """A constructor's ``ValueError``/``TypeError`` becomes one ``ConfigError`` naming ``key``
    (also when Hydra's ``instantiate`` has wrapped it in its own exception with the whole stack)."""
    try:
        yield
    except Exception as err:
        found = user_error(err)
        if found is not None:
            raise found from err
        cause: BaseException | None = err
        while cause is not None and not isinstance(cause, (ValueError, TypeError)):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        message = str(cause)
        named = re.match(r"[a-z_]+\.[a-z_]+", message)  # curio's constructors name their key already
        raise ConfigError(message if named else f"{key}: {message}") from err


def build(node: Any, key: str, **kwargs: Any) -> Any:
    """``instantiate(node)``; constructor errors come out as one ``ConfigError`` naming ``key``."""
    with config_errors(key):
        return instantiate(node, **kwargs)


def save_run_config(cfg: DictConfig, output_dir: Path) -> dict[str, Any]:
    """Create the run dir and write the resolved config and the command-line overrides into it,
    secrets masked. The run's first write: a run dir that cannot be written (read-only, a full
    disk) fails here as one line naming it, before anything is built."""
    resolved = redact(OmegaConf.to_container(cfg, resolve=True))
    overrides = None
    if HydraConfig.initialized():
        overrides = [o if "=" not in o else "=".join(redact(dict([o.split("=", 1)])).popitem())
                     for o in HydraConfig.get().overrides.task]
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        _write_synced(output_dir / "config_resolved.yaml", yaml.safe_dump(resolved, sort_keys=False))
        if overrides is not None:
            _write_synced(output_dir / "overrides.yaml", yaml.safe_dump(overrides))
    except OSError as err:
        raise UserError(f"run dir {output_dir}: cannot write there ({err.strerror or err})") from err
    return resolved


def _write_synced(path: Path, text: str) -> None:
    """Write and flush to disk, so that a full disk fails here and not at the first checkpoint."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


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
