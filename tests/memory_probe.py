"""A callback that records each rank's peak resident memory once the model is ready to train."""

import json
from pathlib import Path

import lightning as L


class PeakRSSAtTrainStart(L.Callback):
    """Writes ``<out>/rank<r>.json`` with the process's peak RSS (bytes) at the start of training:
    model built, sharded, loaded, teacher taken, nothing trained yet.

    The peak is ``VmHWM``, this process image's own high-water mark (``getrusage``'s ``ru_maxrss``
    survives ``exec``, so a rank started by a large process, the test suite, would report its
    parent's peak). It is reset when the callback is built, which ``train.py`` does with the trainer,
    before the tokenizer, the data and the model, so imports and earlier transients do not count;
    ``"reset": false`` in the file says the kernel refused the reset (then the peak is the whole
    process's)."""

    def __init__(self, out: str):
        self.out = Path(out)
        try:
            Path("/proc/self/clear_refs").write_text("5")  # 5: reset the peak RSS (Linux >= 4.0)
            self.reset = True
        except OSError:
            self.reset = False

    def on_train_start(self, trainer, pl_module):
        self.out.mkdir(parents=True, exist_ok=True)
        status = Path("/proc/self/status").read_text().splitlines()
        peak = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps({"peak_rss": peak, "reset": self.reset}))
