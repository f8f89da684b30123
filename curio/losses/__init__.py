"""Training objectives. Each loss is one module here plus one YAML in ``conf/loss/``."""

from curio.losses.base import LossInputs, LossOutput, StudentChunk, TeacherChunk, TeacherLogits, TokenLoss
from curio.losses.ce import CrossEntropyLoss
from curio.losses.curio import CurioLoss
from curio.losses.dft import DFTLoss
from curio.losses.entropy import EntropyRegularizedLoss

__all__ = [
    "CrossEntropyLoss",
    "CurioLoss",
    "DFTLoss",
    "EntropyRegularizedLoss",
    "LossInputs",
    "LossOutput",
    "StudentChunk",
    "TeacherChunk",
    "TeacherLogits",
    "TokenLoss",
]
