"""A benchmark's samples so far, on disk, so that an interrupted generation resumes where it stopped.

:class:`~curio.evaluation.generation.HFGenerator` samples in batches from one seeded random stream.
After each batch, :class:`PartialSamples` appends one line to its file: the batch's samples and the
random state after it. A resumed run reads the finished batches back, restores that random state
and samples only the rest, so it ends with the samples an uninterrupted run would have drawn (on
the same kind of machine: the forward passes are the same computation). A long benchmark (200
problems x 64 samples is hours on a CPU) then loses at most one batch to a kill.
:class:`~curio.evaluation.vllm_generation.VLLMGenerator` keeps its engine calls the same way, with
no random state (its per-sample seeds need none).

The file's first line names what the batches depend on (the prompts, the sampling settings, the
batch size, the device type); a file made with others, or whose batches are not the sizes that key
makes, is set aside (renamed ``<file>.stale``, replacing an older one) and the benchmark starts
afresh. A line cut short by a kill is dropped. Each line is written with one ``write`` and flushed
to disk.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from curio.atomic_write import write_text_atomic
from curio.evaluation.sampling import Sample, SamplingParams
from curio.files import jsonl_lines

log = logging.getLogger(__name__)


def batch_key(prompts: Sequence[Sequence[int]], params: SamplingParams, batch_size: int,
              device_type: str) -> dict[str, Any]:
    """What a run's batches depend on: two runs with equal keys draw the same batches (the device
    type too: a CUDA forward is another computation, with other random states to restore)."""
    digest = hashlib.sha256(json.dumps([list(p) for p in prompts]).encode()).hexdigest()
    key = {"prompts_sha256": digest, "prompts": len(prompts), "sampling": dataclasses.asdict(params),
           "batch_size": batch_size, "device": device_type}
    return json.loads(json.dumps(key))  # as read back from the file (tuples become lists)


def _sizes_fit(key: dict[str, Any], batches: list[dict[str, Any]]) -> bool:
    """Whether ``batches`` are a run of ``key``'s first batches (each as large as the key makes it)."""
    total, size = key["prompts"] * key["sampling"]["n"], key["batch_size"]
    return all(len(batch["samples"]) == min(size, total - i * size) for i, batch in enumerate(batches))


def _sample(row: dict[str, Any]) -> Sample:
    tuples = {k: None if row[k] is None else tuple(row[k]) for k in ("token_ids", "logprobs", "token_entropies")}
    return Sample(**{**row, **tuples})


class PartialSamples:
    """One benchmark's finished batches in ``path`` (JSON lines: the key, then one line per batch).

    :meth:`resume` reads them (and sets the file up for this run); :meth:`append` adds a batch;
    :meth:`discard` deletes the file once the benchmark's results are safely written.

    Attributes:
        earlier_s: seconds the finished batches took to sample, in earlier runs (set by :meth:`resume`).
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.earlier_s = 0.0

    def resume(self, key: dict[str, Any]) -> tuple[list[Sample], dict[str, Any] | None]:
        """``(samples of the finished batches in sampling order, random state after the last)``;
        ``([], None)`` when there are none or they were drawn with another ``key``."""
        lines = self._read()
        batches: list[dict[str, Any]] = []
        if lines and lines[0].get("key") == key and _sizes_fit(key, lines[1:]):
            batches = lines[1:]
        elif lines:
            stale = self.path.with_name(self.path.name + ".stale")
            self.path.replace(stale)
            log.warning("%s was sampled with other prompts or settings (or holds batches of other sizes): "
                        "set aside as %s, this benchmark starts afresh", self.path, stale.name)
        samples = [_sample(row) for batch in batches for row in batch["samples"]]
        self.earlier_s = batches[-1]["elapsed_s"] if batches else 0.0
        # Rewritten without any torn tail, so appended lines follow whole ones.
        self._rewrite([{"key": key}, *batches])
        if batches:
            log.info("%s: resuming after %d samples already drawn", self.path.name, len(samples))
        return samples, batches[-1]["rng"] if batches else None

    def append(self, samples: Sequence[Sample], rng: dict[str, Any], elapsed_s: float) -> None:
        """Record a finished batch: its samples, the random state after it, and the seconds spent
        sampling so far in this run (earlier runs' are added)."""
        line = {"samples": [dataclasses.asdict(s) for s in samples], "rng": rng,
                "elapsed_s": self.earlier_s + elapsed_s}
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")
            out.flush()
            os.fsync(out.fileno())

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)

    def _read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        lines = []
        for text in jsonl_lines(self.path.read_text(encoding="utf-8")):
            if not text:
                continue
            try:
                lines.append(json.loads(text))
            except json.JSONDecodeError:  # the line a kill cut short: it and anything after are dropped
                break
        return lines

    def _rewrite(self, lines: list[dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.path, "".join(json.dumps(line) + "\n" for line in lines))
