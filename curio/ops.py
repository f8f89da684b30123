"""Token math: entropy, target log-probabilities, exact top-K and the output projection.

A leaf module (it imports nothing of curio): losses, temperature rules, teachers, evaluation, the
tiny world, the claims study and the RL stage all compute these quantities here, one way.

Why not ``torch.log_softmax``: in float32 on the CPU its log-normaliser is off by up to ~1e-4 at
Qwen's 151,936 tokens, which moves the entropy of a near-deterministic token by as much (the
CurioSFT gate compares it with 0.03). Here every row is shifted by its maximum first, so the
normaliser ``log sum exp(z - max)`` is a small number, summed apart from its leading 1.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

_FLOAT32_MIN = torch.finfo(torch.float32).min


def entropy(logits: Tensor) -> Tensor:
    """``[..., V] -> [...]`` entropy (nats) of ``softmax(logits)``, in float32, differentiable.

    With ``s = z - max(z)`` and ``e = exp(s)``: the ``c`` maxima (``s = 0``; one unless tied) each
    put 1 in the normaliser ``Z = c + r`` and nothing in ``W = sum_v e_v s_v``, so
    ``H = log c + log1p(r / c) - W / Z`` with ``r`` the sum of the *other* terms, picked out by
    ``-sign(s)`` (a multiplication, cheaper than locating the maximum). Summing them apart from
    the leading 1s keeps float32 accurate where it matters most, on near-deterministic rows: within
    ~1e-6 nats of a float64 computation at V = 151,936 (about 1e-8 near the CurioSFT gate). Logits
    of ``-inf`` (masked vocabulary) contribute nothing, and their gradient is 0, never NaN. A row
    that is entirely ``-inf`` has no entropy (NaN).

    Without autograd the same operations run in place, a cache-sized block of rows at a time
    (:func:`_row_blocks`), so their passes over a row read it from the core's cache rather than
    from memory: bitwise the same values, 3x faster at V = 49,152 (docs/benchmarks.md).
    """
    z = logits.float()
    if torch.is_grad_enabled() and z.requires_grad:
        s = _shifted(z)
        return _entropy_from_sums(_entropy_sums(s, s.sign()), z.shape[-1])
    rows = z.reshape(-1, z.shape[-1])
    sums = torch.empty((3, rows.shape[0]), dtype=torch.float32, device=z.device)
    scratch = torch.empty((3, _block_rows(rows), rows.shape[-1]), device=z.device)  # reused by every block
    for block in _row_blocks(rows):
        s, sign, e = scratch[:, : rows[block].shape[0]]
        _shifted(rows[block], out=s)
        _entropy_sums(s, torch.sign(s, out=sign), e, out=sums[:, block], overwrite_s=True)
    return _entropy_from_sums(sums, rows.shape[-1]).view(z.shape[:-1])


def _shifted(z: Tensor, out: Tensor | None = None) -> Tensor:
    """``z - max(z)`` per row, with ``-inf`` made a finite number (whose exp is 0)."""
    return torch.sub(z, z.amax(dim=-1, keepdim=True), out=out).clamp_(min=_FLOAT32_MIN)


def _entropy_sums(s: Tensor, sign: Tensor, e: Tensor | None = None, out: Tensor | None = None,
                  overwrite_s: bool = False) -> Tensor:
    """``[3, m]``: per row of ``s`` (``[m, V]``, largest value exactly 0) the sums :func:`entropy`
    needs: ``sum e s``, ``sum sign(s)`` and ``-sum e sign(s)`` (the terms other than the maxima').
    ``e`` is an ``[m, V]`` scratch buffer and ``out`` the result's (None: new); ``overwrite_s``
    lets the products be written into ``s`` (no autograd)."""
    e = torch.exp(s, out=e)
    if torch.is_grad_enabled() and s.requires_grad:  # autograd: no writing into a buffer
        return torch.stack([(e * s).sum(dim=-1), sign.sum(dim=-1), -(e * sign).sum(dim=-1)])
    sums = torch.empty((3, s.shape[0]), device=s.device) if out is None else out
    product = s if overwrite_s else None
    torch.sum(torch.mul(e, s, out=product), dim=-1, out=sums[0])
    torch.sum(sign, dim=-1, out=sums[1])
    torch.sum(torch.mul(e, sign, out=product), dim=-1, out=sums[2]).neg_()
    return sums


def _entropy_from_sums(sums: Tensor, vocab: int) -> Tensor:
    """:func:`entropy` from :func:`_entropy_sums`."""
    weighted, signs, rest = sums
    maxima = vocab + signs
    return maxima.log() + torch.log1p(rest / maxima) - weighted / (maxima + rest)


class EntropyAtTemperatures:
    """``H(softmax(logits / tau))`` of the same rows at many per-row temperatures: what the
    entropy-guided rule's bisection asks of the top-K logits twenty-odd times.

    :func:`entropy` of ``logits / tau[:, None]``, bitwise, without redoing per call the work that
    does not depend on tau (the shift by the maximum, the masking, the maxima's signs). The shift
    comes before the division, which keeps float32 rounding away from the probable tokens (the
    ones that carry the entropy).

    Args:
        logits: ``[m, V]`` float32 logits, no gradient.
    """

    def __init__(self, logits: Tensor):
        self.shifted = _shifted(logits.float())
        self.sign = self.shifted.sign()
        self._scratch = torch.empty((2, _block_rows(self.shifted), self.shifted.shape[-1]), device=logits.device)

    def __call__(self, tau: Tensor | float) -> Tensor:
        """``[m]`` (or scalar) temperatures ``-> [m]`` entropies, a cache-sized block at a time."""
        sums = torch.empty((3, self.shifted.shape[0]), device=self.shifted.device)
        for block in _row_blocks(self.shifted):
            heated, e = self._scratch[:, : self.shifted[block].shape[0]]
            torch.div(self.shifted[block], tau[block, None] if isinstance(tau, Tensor) else tau, out=heated)
            _entropy_sums(heated, self.sign[block], e, out=sums[:, block], overwrite_s=True)
        return _entropy_from_sums(sums, self.shifted.shape[-1])

    def rows(self, index: Tensor) -> EntropyAtTemperatures:
        """The same, for the rows ``index`` only (sharing the scratch buffers)."""
        subset = copy.copy(self)
        subset.shifted, subset.sign = self.shifted[index], self.sign[index]
        return subset


# The no-grad paths take rows in blocks of about this many bytes of float32 logits: small enough
# for a core's L2 cache, so a formula's several passes over a block read it from cache (measured
# 2-4x faster than whole-chunk passes on a CPU at V = 19k-49k, docs/benchmarks.md).
_BLOCK_BYTES = 1 << 19


def _block_rows(rows: Tensor) -> int:
    """Rows of ``rows`` (``[n, V]``) per block: about :data:`_BLOCK_BYTES` of float32, at least one."""
    return max(1, _BLOCK_BYTES // (4 * max(1, rows.shape[-1])))


def _row_blocks(rows: Tensor) -> list[slice]:
    """Slices of the ``[n, V]`` ``rows``, :func:`_block_rows` rows each."""
    size = _block_rows(rows)
    return [slice(start, start + size) for start in range(0, rows.shape[0], size)]


def log_softmax(logits: Tensor) -> Tensor:
    """``[..., V] -> [..., V]`` float32 ``log softmax(logits)``, differentiable, with the normaliser
    summed as :func:`entropy` sums it (the leading 1 apart): ``s - log1p(sum of exp(s) without the
    maximum's 1)``, ``s = z - max(z)``. On a near-deterministic row ``torch.log_softmax``'s
    ``log(1 + tiny)`` keeps only float32's 1e-7 of the tiny part; here it keeps all of it, which a
    sum of small differences of log-probabilities (a KL between close distributions) needs.
    """
    z = logits.float()
    top, where = z.max(dim=-1, keepdim=True)
    s = z - top
    if torch.is_grad_enabled() and s.requires_grad:
        rest = s.exp().scatter(-1, where, 0.0).sum(dim=-1, keepdim=True)
        return s - torch.log1p(rest)
    # Without autograd the same formula in place: one [.., V] buffer beside the input's.
    rest = s.exp().scatter_(-1, where, 0.0).sum(dim=-1, keepdim=True)
    return s.sub_(torch.log1p(rest))


def target_logprob(logits: Tensor, targets: Tensor) -> Tensor:
    """``[n, V], [n] -> [n]`` ``log softmax(logits)[targets]``, differentiable.

    The gold token's log-probability in SFT, the sampled token's in RL. Float32 logits give it to
    about one unit in the last place of the log-normaliser (~2e-6 at logits ~ 20).
    """
    return logits.gather(-1, targets[:, None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def target_logprob_at(logits: Tensor, targets: Tensor, temperatures: Tensor) -> Tensor:
    """``[n, V], [n], [n] -> [n]`` ``log softmax(logits[i] / temperatures[i])[targets[i]]``, no gradient.

    The CurioSFT teacher's ``log q`` at each token's own temperature: the same value as
    ``target_logprob(logits / temperatures[:, None], targets)`` (to float32 rounding, ~2e-6),
    without its ``[n, V]`` copy of the heated logits: the rows are heated and summed a
    cache-sized block at a time (:func:`_row_blocks`).
    """
    z = logits.float()
    gold, normaliser = (torch.empty(z.shape[0], dtype=torch.float32, device=z.device) for _ in range(2))
    buffer = torch.empty_like(z[: _block_rows(z)])
    inverse = temperatures.float().reciprocal()[:, None]
    with torch.no_grad():
        for block in _row_blocks(z):
            rows = z[block]
            s = torch.sub(rows, rows.amax(dim=-1, keepdim=True), out=buffer[: rows.shape[0]]).mul_(inverse[block])
            torch.gather(s, -1, targets[block, None], out=gold[block, None])
            torch.sum(s.exp_(), dim=-1, out=normaliser[block])
    return gold - normaliser.log()


def top_k_values(z: Tensor, k: int) -> Tensor:
    """``[n, V] -> [n, k]`` the k largest values of every row (unordered), exactly as ``z.topk``.

    On the CPU (float32/float64, no gradient) through numpy's ``partition`` (introselect, values
    only, a cache-sized block of rows at a time): at K = 512 over V = 19k-49k logits about 5x
    faster than ``topk``, which keeps indices and was the teacher statistics' dearest step
    (docs/benchmarks.md). Elsewhere ``topk`` itself.
    """
    if z.device.type == "cpu" and z.dtype in (torch.float32, torch.float64) and not z.requires_grad:
        return _top_k_values_numpy(z, k)
    return z.topk(k, dim=-1, sorted=False).values


def _top_k_values_numpy(z: Tensor, k: int) -> Tensor:
    """:func:`top_k_values` on the CPU: ``numpy.partition`` leaves each row's k largest values
    (ties included, as many copies as ``topk`` keeps) in its last k places."""
    n, vocab = z.shape
    rows = z.numpy()
    out = np.empty((n, k), dtype=rows.dtype)
    for block in _row_blocks(z):
        out[block] = np.partition(rows[block], vocab - k, axis=-1)[:, vocab - k :]
    return torch.from_numpy(out)


def project(head: nn.Module, hidden: Tensor, float32: bool = False) -> Tensor:
    """``[n, H] -> [n, V]`` float32 logits of the output layer ``head`` (a ``Linear``).

    ``float32=False``: ``head(hidden)`` in whatever the context computes in (bf16 under autocast or
    with bf16 weights), then upcast. ``float32=True``: the matmul itself runs in float32, outside
    autocast, on upcast weights and inputs, so statistics taken from the logits (the CurioSFT
    teacher's temperature, entropy and log q) are not those of bf16-rounded logits.
    """
    if not float32 or computes_in_float32(head, hidden):
        return head(hidden).float()
    with torch.autocast(device_type=hidden.device.type, enabled=False):
        bias = None if head.bias is None else head.bias.float()
        return F.linear(hidden.float(), head.weight.float(), bias)


def computes_in_float32(head: nn.Module, hidden: Tensor) -> bool:
    """Whether ``head(hidden)`` already runs in float32 here: no autocast, float32 weights and input."""
    return (
        not torch.is_autocast_enabled(hidden.device.type)
        and hidden.dtype == torch.float32
        and head.weight.dtype == torch.float32
    )


def at_temperature(logits: Tensor, temperature: float) -> Tensor:
    """``logits / T``: the logits of the distribution a sampler at temperature ``T`` draws from
    (``logits`` themselves at T = 1)."""
    return logits if temperature == 1 else logits / temperature


@torch.no_grad()
def chunked_logprobs(head: nn.Module, hidden: Tensor, targets: Tensor, chunk_size: int | None,
                     temperature: float = 1.0) -> tuple[Tensor, Tensor]:
    """``[N, H], [N] -> ([N], [N])``: log-probabilities of ``targets`` and the entropies under the
    distribution at ``temperature`` (``softmax(logits / T)``), projected ``chunk_size`` tokens at
    a time (never ``[N, V]``), without gradient.

    The same chunks and operations as a loss's forward pass over the same positions
    (:class:`curio.losses.TokenLoss`, :func:`at_temperature`), so its log-probabilities are
    bitwise the loss's.
    """
    size = chunk_size or max(1, targets.shape[0])
    logprobs, entropies = [], []
    for start in range(0, targets.shape[0], size):
        logits = at_temperature(project(head, hidden[start : start + size]), temperature)
        logprobs.append(target_logprob(logits, targets[start : start + size]))
        entropies.append(entropy(logits))
        del logits
    if not logprobs:
        empty = hidden.new_zeros(0, dtype=torch.float32)
        return empty, empty
    return torch.cat(logprobs), torch.cat(entropies)
