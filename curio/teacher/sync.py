"""In-place interpolation of a teacher's tensors toward the student's: phi <- phi + alpha (theta - phi)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

#: Upper bound on the float32 scratch (in elements) when teacher and student dtypes differ:
#: 2**26 elements = 256 MiB, whatever the model size.
MIXED_BUCKET_NUMEL = 2**26


@torch.no_grad()
def lerp_(targets: list[Tensor], sources: list[Tensor], weight: float) -> None:
    """``targets[i] <- targets[i] + weight * (sources[i] - targets[i])`` in place, no autograd.

    Same-dtype pairs take one ``torch._foreach_lerp_``. Pairs whose dtypes differ (a bf16 teacher
    of an fp32 student) are interpolated in float32 and rounded once, in buckets of at most
    :data:`MIXED_BUCKET_NUMEL` elements so that the scratch stays small.

    Args:
        targets: the teacher's tensors, updated in place.
        sources: the student's tensors, same shapes, same order.
        weight: alpha, the weight of the source.
    """
    if len(targets) != len(sources):
        raise ValueError(f"lerp_ got {len(targets)} targets but {len(sources)} sources")
    # FSDP2 parameters are DTensors; teacher and student are sharded alike, so interpolating the
    # local shards is the whole update and needs no communication.
    targets = [_local(t) for t in targets]
    sources = [_local(s) for s in sources]
    for t, s in zip(targets, sources):
        if t.shape != s.shape:
            raise ValueError(f"lerp_ shape mismatch: teacher {tuple(t.shape)} vs student {tuple(s.shape)}")
    same = [i for i, (t, s) in enumerate(zip(targets, sources)) if t.dtype == s.dtype]
    if same:
        torch._foreach_lerp_([targets[i] for i in same], [sources[i] for i in same], weight)
    bucket: list[int] = []
    numel = 0
    for i in (i for i, (t, s) in enumerate(zip(targets, sources)) if t.dtype != s.dtype):
        if bucket and numel + targets[i].numel() > MIXED_BUCKET_NUMEL:
            _lerp_mixed(targets, sources, bucket, weight)
            bucket, numel = [], 0
        bucket.append(i)
        numel += targets[i].numel()
    if bucket:
        _lerp_mixed(targets, sources, bucket, weight)


def _lerp_mixed(targets: list[Tensor], sources: list[Tensor], idx: list[int], weight: float) -> None:
    scratch = [targets[i].float() for i in idx]
    torch._foreach_lerp_(scratch, [sources[i].float() for i in idx], weight)
    torch._foreach_copy_([targets[i] for i in idx], scratch)


def _local(t: Tensor) -> Tensor:
    return t.to_local() if hasattr(t, "to_local") else t


def paired_tensors(teacher: nn.Module, student: nn.Module) -> tuple[list[Tensor], list[Tensor]]:
    """The parameters and floating buffers of two copies of one architecture, matched by name.

    Integer buffers (counters, masks) are not interpolated.

    Raises:
        ValueError: when the two modules do not have the same parameter and buffer names (e.g.
            the student was wrapped or compiled after the teacher was attached).
    """
    pairs: list[tuple[Tensor, Tensor]] = []
    for kind in ("parameters", "buffers"):
        t_named = dict(getattr(teacher, f"named_{kind}")())
        s_named = dict(getattr(student, f"named_{kind}")())
        if t_named.keys() != s_named.keys():
            diff = sorted(t_named.keys() ^ s_named.keys())[:5]
            raise ValueError(f"teacher and student {kind} differ, e.g. {diff}")
        pairs += [(t, s_named[n]) for n, t in t_named.items() if t.is_floating_point()]
    return [t for t, _ in pairs], [s for _, s in pairs]
