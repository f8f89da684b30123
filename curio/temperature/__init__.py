"""Per-token teacher temperatures for CurioSFT (spec section 5). One rule per module, one YAML in
``conf/temp/``; every rule maps ``[n, V]`` teacher logits to a :class:`TemperatureResult`."""

from curio.temperature.base import TemperatureResult, TemperatureRule
from curio.temperature.entropy_guided import EntropyGuidedTemperature
from curio.temperature.fixed import FixedTemperature

__all__ = ["EntropyGuidedTemperature", "FixedTemperature", "TemperatureResult", "TemperatureRule"]
