"""The chunked loss never materialises more than chunk x vocabulary float32 values at once, and
never holds more than a few such buffers at a time."""

from __future__ import annotations

import weakref

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from curio.losses import AnchoredLoss, CurioLoss, EAFTLoss, GEMLoss, LossInputs, PSFTLoss, SEDLoss
from curio.teacher.base import ProjectedLogits
from curio.teacher.live import StudentLogits
from curio.temperature import EntropyGuidedTemperature

VOCAB = 151_936  # Qwen2.5
CHUNK, HIDDEN = 64, 16


class Buffers(TorchDispatchMode):
    """Records, over every op (forward, recomputation and backward): the largest float32 tensor,
    the most chunk x vocabulary buffers alive at once (distinct storages, so in-place ops count
    once), and the largest tensor of any other dtype."""

    def __init__(self) -> None:
        super().__init__()
        self.numel, self.op, self.ops = 0, "", 0
        self.alive: list[weakref.ref] = []
        self.most_alive = 0
        self.other_dtype_numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.ops += 1
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor) or not t.is_floating_point():
                continue
            if t.dtype != torch.float32:
                self.other_dtype_numel = max(self.other_dtype_numel, t.numel())
                continue
            if t.numel() > self.numel:
                self.numel, self.op = t.numel(), str(func)
            if t.numel() >= CHUNK * VOCAB:
                self.alive.append(weakref.ref(t))
        self.alive = [r for r in self.alive if r() is not None]
        self.most_alive = max(self.most_alive, len({r().untyped_storage().data_ptr() for r in self.alive}))
        return out


@pytest.mark.parametrize("teacher", ["copy", "live"])
def test_curio_loss_peak_tensor_is_one_chunk_of_logits(teacher: str) -> None:
    n_tokens = 3 * CHUNK
    head, teacher_head = nn.Linear(HIDDEN, VOCAB, bias=False), nn.Linear(HIDDEN, VOCAB, bias=False)
    hidden = torch.randn(n_tokens, HIDDEN, requires_grad=True)
    if teacher == "copy":
        view = ProjectedLogits(torch.randn(n_tokens, HIDDEN) * 3, teacher_head, fp32=True)
    else:
        view = StudentLogits(hidden.detach(), head, fp32=True)
    inputs = LossInputs(hidden=hidden, targets=torch.randint(VOCAB, (n_tokens,)), head=head, teacher=view)
    loss_fn = CurioLoss(EntropyGuidedTemperature(), chunk_size=CHUNK)

    with Buffers() as forward:
        out = loss_fn(inputs)
    with Buffers() as backward:
        out.loss_sum.backward()

    limit = CHUNK * VOCAB
    assert forward.numel == limit, (forward.numel, forward.op)  # the logits of one chunk, no more
    assert backward.ops > 0 and backward.numel <= limit, (backward.numel, backward.op)
    # A copy teacher's logits are reduced and freed before the student's are projected; the
    # entropy needs two buffers beside the logits it reads. No float64 (or other) copy of them.
    assert forward.most_alive <= 3 and backward.most_alive <= 4, (forward.most_alive, backward.most_alive)
    assert max(forward.other_dtype_numel, backward.other_dtype_numel) < limit
    assert hidden.grad is not None and head.weight.grad is not None


# Every other loss with a teacher or a full-vocabulary term: the most chunk x vocabulary float32
# buffers alive at once, forward and backward, as measured (a new loss states its own).
BASELINES = {
    "gem": (lambda: GEMLoss(chunk_size=CHUNK), False, (4, 5)),
    "gem_linear": (lambda: GEMLoss(weighting="linear", chunk_size=CHUNK), False, (4, 5)),
    "psft": (lambda: PSFTLoss(chunk_size=CHUNK), True, (3, 4)),
    # The KL: the teacher's log-probabilities and their exp beside the student's logits and its
    # log-softmax (with two temporaries), and the product.
    "asft": (lambda: AnchoredLoss(chunk_size=CHUNK), True, (6, 7)),
    "sft_kl": (lambda: AnchoredLoss("ce", chunk_size=CHUNK), True, (6, 7)),
    "eaft": (lambda: EAFTLoss(chunk_size=CHUNK), False, (3, 4)),
    "sed": (lambda: SEDLoss(chunk_size=CHUNK), False, (3, 4)),
}


@pytest.mark.parametrize("name", list(BASELINES))
def test_every_baseline_peak_tensor_is_one_chunk_of_logits(name: str) -> None:
    factory, reads_teacher, (most_forward, most_backward) = BASELINES[name]
    n_tokens = 3 * CHUNK
    head, teacher_head = nn.Linear(HIDDEN, VOCAB, bias=False), nn.Linear(HIDDEN, VOCAB, bias=False)
    hidden = torch.randn(n_tokens, HIDDEN, requires_grad=True)
    view = ProjectedLogits(torch.randn(n_tokens, HIDDEN) * 3, teacher_head, fp32=True) if reads_teacher else None
    inputs = LossInputs(hidden=hidden, targets=torch.randint(VOCAB, (n_tokens,)), head=head, teacher=view)

    with Buffers() as forward:
        out = factory()(inputs)
    with Buffers() as backward:
        out.loss_sum.backward()

    limit = CHUNK * VOCAB
    assert forward.numel == limit and backward.numel <= limit, (forward.numel, forward.op, backward.numel)
    assert forward.most_alive <= most_forward and backward.most_alive <= most_backward, \
        (forward.most_alive, backward.most_alive)
    assert max(forward.other_dtype_numel, backward.other_dtype_numel) < limit
    assert hidden.grad is not None and head.weight.grad is not None
