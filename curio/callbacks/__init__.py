"""Lightning callbacks."""

from curio.callbacks.hf_export import HFExport

__all__ = ["HFExport"]
