"""A callback that records each rank's peak resident memory once the model is ready to train."""

import json
import resource
from pathlib import Path

import lightning as L


class PeakRSSAtTrainStart(L.Callback):
    """Writes ``<out>/rank<r>.json`` with the process's peak RSS (bytes) at the start of training:
    model built, sharded, loaded, teacher taken, nothing trained yet."""

    def __init__(self, out: str):
        self.out = Path(out)

    def on_train_start(self, trainer, pl_module):
        self.out.mkdir(parents=True, exist_ok=True)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps({"peak_rss": peak}))
