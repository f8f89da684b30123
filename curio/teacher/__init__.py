"""Teachers for CurioSFT (spec section 4). One mode per module, one YAML in ``conf/teacher/``.

Every teacher is an ``nn.Module``: registered on the LightningModule, its frozen copy of the
model is part of the state dict and therefore of every checkpoint.
"""

from curio.teacher.base import CopyTeacher, Teacher
from curio.teacher.ema import EmaTeacher
from curio.teacher.frozen import FrozenTeacher
from curio.teacher.lagged import LaggedTeacher
from curio.teacher.live import LiveTeacher
from curio.teacher.sync import lerp_

__all__ = ["CopyTeacher", "EmaTeacher", "FrozenTeacher", "LaggedTeacher", "LiveTeacher", "Teacher", "lerp_"]
