"""Which checkpoint a run resumes from (``ckpt_path``), and clearing what a killed save left behind.

Light on purpose (no torch, no Lightning): ``train.py`` checks ``ckpt_path`` before anything loads.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from curio.atomic_write import STAGING_SUFFIX
from curio.errors import ConfigError

log = logging.getLogger(__name__)

#: Suffixes of a checkpoint still being written (``AtomicCheckpointIO``, ``FSDP2Strategy``): a
#: kill leaves them behind, and they are never complete.
STAGING_SUFFIXES = (STAGING_SUFFIX, ".old")


def check_ckpt_path(ckpt_path: str | None) -> None:
    """``null``, ``auto``, a URL, or a checkpoint file or folder that exists."""
    if ckpt_path in (None, "auto") or "://" in str(ckpt_path):
        return
    if not Path(ckpt_path).expanduser().exists():
        raise ConfigError(f"ckpt_path={ckpt_path}: no such file or folder (ckpt_path=auto resumes the newest "
                          "checkpoint of the run dir given as hydra.run.dir)")


def resolve_ckpt_path(ckpt_path: str | None, output_dir: Path) -> str | None:
    """The checkpoint to hand Lightning. ``auto``: the newest complete checkpoint in the run dir's
    ``checkpoints/`` (``last.ckpt`` or a periodic one, a file or a sharded folder), or None to
    start fresh, so the same command both starts and resumes a pre-emptible job. Before that,
    what a killed save left (``*.tmp``, ``*.old``) is removed: it is never a whole checkpoint."""
    check_ckpt_path(ckpt_path)
    if ckpt_path != "auto":
        return ckpt_path
    folder = output_dir / "checkpoints"
    if not folder.is_dir():
        return None
    for stale in [p for p in folder.iterdir() if p.name.endswith(STAGING_SUFFIXES)]:
        log.warning("Removing %s, left by an interrupted checkpoint save", stale)
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    candidates = [p for p in folder.glob("*.ckpt")]
    if not candidates:
        return None
    newest = max(candidates, key=lambda p: p.stat().st_mtime)
    log.info("Resuming from %s", newest)
    return str(newest)
