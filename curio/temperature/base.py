"""The interface every temperature rule follows."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from torch import Tensor


@dataclass
class TemperatureResult:
    """Per-token temperatures of one chunk plus why each took its value.

    The three flags are disjoint, so their token means and the interior fraction sum to one.

    Attributes:
        tau: ``[n]`` float32 temperatures.
        gated: ``[n]`` bool, the low-entropy gate fired (tau = tau_min).
        at_min: ``[n]`` bool, clamped to tau_min by the search range (gated tokens excluded).
        at_max: ``[n]`` bool, clamped to tau_max by the search range (gated tokens excluded).
    """

    tau: Tensor
    gated: Tensor
    at_min: Tensor
    at_max: Tensor


class TemperatureRule(ABC):
    """Chooses the teacher temperature of every token from the teacher's own logits."""

    @abstractmethod
    def __call__(self, logits: Tensor, entropy: Tensor | None = None) -> TemperatureResult:
        """Temperatures for one chunk, computed in float32 under ``no_grad``.

        Args:
            logits: ``[n, V]`` teacher logits at temperature 1 (any float dtype).
            entropy: ``[n]`` full-vocabulary entropy of ``softmax(logits)`` if the caller already
                has it (the CurioSFT loss logs it anyway); computed here when needed and None.

        Returns:
            A :class:`TemperatureResult` of ``[n]`` tensors on the logits' device.
        """
