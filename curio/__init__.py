"""curio: entropy-preserving supervised fine-tuning (CurioSFT) with Lightning and Hydra."""

__version__ = "0.1.0"
