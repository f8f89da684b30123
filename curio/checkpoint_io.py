"""Checkpoint files written atomically: a crash mid-write never destroys the last good one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning.pytorch.plugins.io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes ``<path>.tmp`` then renames it over ``path`` (``os.replace`` is atomic on POSIX).

    Lightning writes straight to the final name, so a kill during ``last.ckpt``'s rewrite would
    leave a truncated file where the previous good checkpoint was. Loading is Lightning's, which
    uses ``torch.load(weights_only=True)`` on the torch versions this project supports.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        super().save_checkpoint(checkpoint, tmp, storage_options)
        os.replace(tmp, path)
