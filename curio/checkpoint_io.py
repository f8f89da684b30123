"""Checkpoint files written atomically: a crash mid-write never destroys the last good one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from curio.atomic_write import staging_path
from curio.errors import UserError


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes ``<path>.tmp`` beside the target, then renames it over ``path`` (``os.replace`` is
    atomic on POSIX, and the two are on the same file system).

    Lightning would stage the file in ``$TMPDIR`` (an fsspec transaction), where every kill leaves
    a partial copy that is never removed, and a full ``$TMPDIR`` fails with an error naming no
    path. Here a kill leaves only ``<path>.tmp``, which the next save overwrites and
    ``ckpt_path=auto`` removes (:mod:`curio.resume`); a failed write names the checkpoint and
    leaves the previous one whole. Remote paths (``s3://...``) keep Lightning's writer. Loading is
    Lightning's, which uses ``torch.load(weights_only=True)`` on the torch versions supported here.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        if "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        tmp = staging_path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise UserError(f"cannot write checkpoint {path}: {err.strerror or err}") from err
