"""The chunked loss never materialises more than chunk x vocabulary float32 values at once."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from curio.losses import CurioLoss, LossInputs
from curio.teacher.base import ProjectedLogits
from curio.temperature import EntropyGuidedTemperature

VOCAB = 151_936  # Qwen2.5
CHUNK, HIDDEN = 64, 16


class LargestFloat32(TorchDispatchMode):
    """Records the largest float32 tensor any op returns (forward, recomputation and backward)."""

    def __init__(self) -> None:
        super().__init__()
        self.numel, self.op, self.ops = 0, "", 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.ops += 1
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.dtype == torch.float32 and t.numel() > self.numel:
                self.numel, self.op = t.numel(), str(func)
        return out


def test_curio_loss_peak_tensor_is_one_chunk_of_logits() -> None:
    n_tokens = 3 * CHUNK
    head, teacher_head = nn.Linear(HIDDEN, VOCAB, bias=False), nn.Linear(HIDDEN, VOCAB, bias=False)
    hidden = torch.randn(n_tokens, HIDDEN, requires_grad=True)
    teacher = ProjectedLogits(torch.randn(n_tokens, HIDDEN) * 3, teacher_head, fp32=True)
    inputs = LossInputs(hidden=hidden, targets=torch.randint(VOCAB, (n_tokens,)), head=head, teacher=teacher)
    loss_fn = CurioLoss(EntropyGuidedTemperature(), chunk_size=CHUNK)

    with LargestFloat32() as forward:
        out = loss_fn(inputs)
    with LargestFloat32() as backward:
        out.loss_sum.backward()

    limit = CHUNK * VOCAB
    assert forward.numel == limit, (forward.numel, forward.op)  # the logits of one chunk, no more
    assert backward.ops > 0 and backward.numel <= limit, (backward.numel, backward.op)
    assert hidden.grad is not None and head.weight.grad is not None
