"""Training objectives. Each loss is one module here plus one YAML in ``conf/loss/``."""

from curio.losses.anchored import AnchoredLoss
from curio.losses.base import LossInputs, LossOutput, StudentChunk, TeacherChunk, TeacherLogits, TokenLoss
from curio.losses.ce import CrossEntropyLoss
from curio.losses.curio import CurioLoss
from curio.losses.dft import DFTLoss
from curio.losses.eaft import EAFTLoss
from curio.losses.entropy import EntropyRegularizedLoss
from curio.losses.gem import GEMLoss
from curio.losses.psft import PSFTLoss
from curio.losses.sed import SEDLoss

__all__ = [
    "AnchoredLoss",
    "CrossEntropyLoss",
    "CurioLoss",
    "DFTLoss",
    "EAFTLoss",
    "EntropyRegularizedLoss",
    "GEMLoss",
    "LossInputs",
    "LossOutput",
    "PSFTLoss",
    "SEDLoss",
    "StudentChunk",
    "TeacherChunk",
    "TeacherLogits",
    "TokenLoss",
]
