"""Files replaced whole: written to ``<name>.tmp`` beside the target, then renamed over it.

``os.replace`` is atomic on POSIX (the two names are on one file system), and the staged file is
flushed to disk first, so a reader, or a run resumed after a kill or a power loss, finds either the
old file or the new one, never half of one. A kill leaves at most the ``.tmp`` sibling, which the
next write overwrites. Checkpoints are written the same way with ``torch.save``
(:mod:`curio.checkpoint_io`), and ``ckpt_path=auto`` clears their leftovers (:mod:`curio.resume`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


#: What a write's staging sibling adds to the target's name.
STAGING_SUFFIX = ".tmp"


def staging_path(path: Path) -> Path:
    """The sibling a write of ``path`` (a file or a folder) is staged in."""
    return path.with_name(path.name + STAGING_SUFFIX)


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) in one rename."""
    tmp = staging_path(path)
    with tmp.open("w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: Path, data: Any) -> None:
    """Replace ``path`` with ``data`` as indented JSON in one rename."""
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
