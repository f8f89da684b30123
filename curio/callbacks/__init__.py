"""Lightning callbacks."""

from curio.callbacks.checkpoint import PeriodicCheckpoint
from curio.callbacks.hf_export import HFExport
from curio.callbacks.preemption import PreemptionCheckpoint
from curio.callbacks.token_plots import TokenPlots

__all__ = ["HFExport", "PeriodicCheckpoint", "PreemptionCheckpoint", "TokenPlots"]
