"""Advantages, the policy losses and their aggregation against float64 references written from the
RL issue's formulas, one token at a time; values and gradients, plain and chunked."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from curio.losses import LossInputs
from curio.ops import chunked_logprobs
from curio.rl.advantages import group_advantages
from curio.rl.policy_loss import PolicyLoss
from curio.rl.weights import sequence_weights
from curio.teacher.base import ProjectedLogits

V, H = 300, 12


# ------------------------------------------------------------------------------ references
def advantages64(rewards: list[list[float]], scale_by_std: bool, eps: float = 1e-6) -> list[list[float]]:
    out = []
    for group in rewards:
        g = len(group)
        if g == 1:
            out.append([float(group[0])])
            continue
        mean = sum(group) / g
        std = math.sqrt(sum((r - mean) ** 2 for r in group) / (g - 1))
        out.append([(r - mean) / (std + eps) if scale_by_std else r - mean for r in group])
    return out


def log_softmax64(z: torch.Tensor) -> torch.Tensor:
    m = z.max()
    return z - m - torch.log(torch.exp(z - m).sum())


def token_loss64(kind, z, y, adv, old, lo, hi, ref_z=None, kl_coef=0.0, entropy_coef=0.0, temperature=1.0):
    """One token's policy loss, differentiable in z (float64 ``[V]``), under softmax(z / T)."""
    logp_all = log_softmax64(z / temperature)
    logp = logp_all[y]
    ratio = torch.exp(logp - old)
    clipped = torch.clamp(ratio, 1 - lo, 1 + hi)
    if kind == "ppo_clip":
        loss = -torch.minimum(ratio * adv, clipped * adv)
    else:
        loss = torch.minimum(-adv * logp, -adv * clipped)
    if ref_z is not None and kl_coef:
        d = log_softmax64(ref_z / temperature)[y] - logp
        loss = loss + kl_coef * (torch.exp(d) - d - 1)
    if entropy_coef:
        loss = loss + entropy_coef * (torch.exp(logp_all) * logp_all).sum()
    return loss


# ------------------------------------------------------------------------------ advantages
@pytest.mark.parametrize("scale_by_std", [True, False])
def test_group_advantages_match_the_reference(scale_by_std):
    rewards = [[1, 0, 0, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1], [0] * 8, [0.5, 0.25, 1.0, 0.0, 0, 0, 0, 1]]
    got = group_advantages(torch.tensor(rewards, dtype=torch.float32), scale_by_std=scale_by_std)
    torch.testing.assert_close(got.double(), torch.tensor(advantages64(rewards, scale_by_std), dtype=torch.float64),
                               rtol=1e-6, atol=1e-6)
    # All-correct and all-wrong groups: advantage 0, not NaN.
    assert torch.equal(got[1], torch.zeros(8)) and torch.equal(got[2], torch.zeros(8))


def test_a_group_of_one_keeps_its_reward():
    got = group_advantages(torch.tensor([[1.0], [0.0]]))
    assert got.tolist() == [[1.0], [0.0]]


# ------------------------------------------------------------------------------ aggregation
def test_aggregation_weights():
    lengths = [3, 5, 2]
    assert sequence_weights(lengths, "token_mean", 8) == [0.1] * 3
    assert sequence_weights(lengths, "sequence_mean", 8) == pytest.approx([1 / 9, 1 / 15, 1 / 6])
    assert sequence_weights(lengths, "constant", 8) == pytest.approx([1 / 24] * 3)
    # The step's totals over every rank, not this rank's.
    assert sequence_weights(lengths, "token_mean", 8, total_tokens=20, total_sequences=6) == [0.05] * 3
    assert sequence_weights(lengths, "sequence_mean", 8, total_tokens=20, total_sequences=6)[0] == pytest.approx(1 / 18)
    with pytest.raises(ValueError, match="rl.aggregation must be one of"):
        sequence_weights(lengths, "mean", 8)


# ------------------------------------------------------------------------------ policy loss
def make_case(seed: int, lengths=(4, 7, 1, 5), reference: bool = False):
    g = torch.Generator().manual_seed(seed)
    n = sum(lengths)
    head = nn.Linear(H, V, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.randn(V, H, generator=g) / math.sqrt(H))
    hidden = torch.randn(n, H, generator=g) * torch.tensor([0.3, 2.0, 5.0])[torch.randint(3, (n,), generator=g)][:, None]
    targets = torch.randint(V, (n,), generator=g)
    adv_per_seq = torch.tensor([1.3, -0.7, 0.0, -2.0])[: len(lengths)]
    advantage = torch.cat([a.repeat(k) for a, k in zip(adv_per_seq, lengths)])
    # The rollout policy was a little different: old log-probs 0.5 off, alternately above and below,
    # so ratios fall outside [0.8, 1.2] on both sides.
    old = chunked_logprobs(head, hidden, targets, None)[0] + 0.5 * (1 - 2 * (torch.arange(n) % 2))
    ref = None
    if reference:
        ref_head = nn.Linear(H, V, bias=False)
        with torch.no_grad():
            ref_head.weight.copy_(head.weight + 0.2 * torch.randn(V, H, generator=g) / math.sqrt(H))
        ref = (hidden.clone(), ref_head)
    return hidden, head, targets, advantage, old, list(lengths), ref


def run(loss: PolicyLoss, case, aggregation="sequence_mean", max_len=8):
    hidden, head, targets, advantage, old, lengths, ref = case
    weight = torch.cat([torch.full((k,), w) for k, w in zip(lengths, sequence_weights(lengths, aggregation, max_len))])
    h = hidden.detach().clone().requires_grad_()
    head.weight.grad = None
    teacher = ProjectedLogits(ref[0], ref[1], fp32=True) if ref else None
    out = loss(LossInputs(h, targets, head, teacher, {"advantage": advantage, "old_logprob": old, "weight": weight}))
    out.loss_sum.backward()
    return out, h.grad, head.weight.grad.clone(), weight


def reference(kind, case, weight, lo, hi, kl_coef=0.0, entropy_coef=0.0, temperature=1.0):
    hidden, head, targets, advantage, old, _, ref = case
    h = hidden.detach().double().requires_grad_()
    w = head.weight.detach().double().requires_grad_()
    total = (h.sum() + w.sum()) * 0.0
    for t in range(h.shape[0]):
        ref_z = (ref[0][t].double() @ ref[1].weight.detach().double().T) if ref else None
        total = total + weight[t].double() * token_loss64(kind, h[t] @ w.T, int(targets[t]), advantage[t].double(),
                                                          old[t].double(), lo, hi, ref_z, kl_coef, entropy_coef,
                                                          temperature)
    total.backward()
    return total.detach(), h.grad, w.grad


def assert_close_rel(actual, expected, rel):
    scale = expected.abs().max().item()
    assert (actual.double() - expected).abs().max().item() <= rel * max(scale, 1e-30)


@pytest.mark.parametrize("chunk", [None, 3])
@pytest.mark.parametrize(("kind", "lo", "hi", "kl", "ent", "agg", "temp"), [
    ("ppo_clip", 0.2, 0.2, 0.0, 0.0, "sequence_mean", 1.0),
    ("ppo_clip", 0.2, 0.28, 0.0, 0.0, "token_mean", 1.0),
    ("authors", 0.2, 0.2, 0.0, 0.0, "constant", 1.0),
    ("ppo_clip", 0.2, 0.2, 0.05, 0.01, "token_mean", 1.0),
    ("authors", 0.2, 0.2, 0.1, 0.02, "sequence_mean", 1.0),
    ("ppo_clip", 0.2, 0.28, 0.05, 0.01, "token_mean", 0.6),
    ("authors", 0.2, 0.2, 0.1, 0.0, "constant", 1.3),
])
def test_policy_loss_matches_float64(kind, lo, hi, kl, ent, agg, temp, chunk):
    case = make_case(1, reference=bool(kl))
    loss = PolicyLoss(kind, lo, hi, kl_coef=kl, entropy_coef=ent, chunk_size=chunk, temperature=temp)
    out, gh, gw, weight = run(loss, case, agg)
    ref_loss, ref_gh, ref_gw = reference(kind, case, weight, lo, hi, kl, ent, temp)
    assert abs(out.loss_sum.item() - ref_loss.item()) <= 1e-6 * max(abs(ref_loss.item()), 1e-3)
    assert_close_rel(gh, ref_gh, 1e-5)
    assert_close_rel(gw, ref_gw, 1e-5)
    m = out.token_metrics
    assert {"logprob", "ratio", "clip_low", "clip_high", "entropy"} <= set(m) and ("kl" in m) == bool(kl)
    # Some tokens were clipped on each side (the old log-probs are 0.5 off).
    assert m["clip_high"].sum() > 0
    assert kind == "authors" or m["clip_low"].sum() > 0


def test_authors_loss_clips_only_positive_advantages_and_never_below_for_negative():
    """For A < 0 the authors' objective is |A| log p: unclipped, whatever the ratio."""
    case = make_case(2)
    out, *_ = run(PolicyLoss("authors", 0.2, 0.2), case)
    negative = case[3] < 0
    assert out.token_metrics["clip_low"][negative].sum() == 0 and out.token_metrics["clip_high"][negative].sum() == 0


def test_zero_advantage_gives_zero_gradient_without_kl_or_entropy():
    hidden, head, targets, advantage, old, lengths, ref = make_case(3)
    case = (hidden, head, targets, torch.zeros_like(advantage), old, lengths, ref)
    out, gh, gw, _ = run(PolicyLoss("ppo_clip"), case)
    assert out.loss_sum.item() == 0.0 and torch.count_nonzero(gh) == 0 and torch.count_nonzero(gw) == 0


@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_ratio_is_exactly_one_at_the_first_update(temperature):
    hidden, head, targets, advantage, _, lengths, _ = make_case(4)
    for chunk in (None, 3):
        old = chunked_logprobs(head, hidden, targets, chunk, temperature)[0]
        case = (hidden, head, targets, advantage, old, lengths, None)
        out, *_ = run(PolicyLoss("ppo_clip", chunk_size=chunk, temperature=temperature), case)
        assert torch.equal(out.token_metrics["ratio"], torch.ones_like(old))
        assert out.token_metrics["clip_low"].sum() == 0 and out.token_metrics["clip_high"].sum() == 0


@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_without_old_log_probabilities_the_loss_is_the_first_updates(temperature):
    """The first optimizer step of a rollout step passes no old log-probabilities: the loss, its
    gradients and its metrics are those with the scoring pass's."""
    hidden, head, targets, advantage, _, lengths, _ = make_case(6)
    loss = PolicyLoss("ppo_clip", 0.2, 0.28, chunk_size=3, temperature=temperature)
    weight = torch.cat([torch.full((k,), w) for k, w in zip(lengths, sequence_weights(lengths, "token_mean", 8))])

    def step(given):
        h = hidden.detach().clone().requires_grad_()
        head.weight.grad = None
        out = loss(LossInputs(h, targets, head, None, {"advantage": advantage, "weight": weight, **given}))
        out.loss_sum.backward()
        return out, h.grad, head.weight.grad.clone()

    old, old_entropy = chunked_logprobs(head, hidden, targets, 3, temperature)
    with_old, without = step({"old_logprob": old}), step({})
    assert torch.equal(with_old[0].loss_sum, without[0].loss_sum)
    assert torch.equal(with_old[1], without[1]) and torch.equal(with_old[2], without[2])
    assert torch.equal(without[0].token_metrics["ratio"], torch.ones_like(old))
    torch.testing.assert_close(without[0].token_metrics["logprob"], old, rtol=0, atol=1e-6)
    torch.testing.assert_close(without[0].token_metrics["entropy"], old_entropy, rtol=0, atol=1e-6)


@pytest.mark.parametrize("agg", ["token_mean", "sequence_mean", "constant"])
def test_the_step_gradient_does_not_depend_on_the_micro_batch_split(agg):
    """Weights come from the whole step's lengths: summing micro-batch gradients gives the same."""
    hidden, head, targets, advantage, old, lengths, _ = make_case(5, lengths=(4, 7, 2, 5))
    weights = torch.cat([torch.full((k,), w) for k, w in zip(lengths, sequence_weights(lengths, agg, 8))])
    loss = PolicyLoss("ppo_clip", 0.2, 0.28, chunk_size=4)

    def grads(splits):
        head.weight.grad = None
        for rows in splits:
            h = hidden[rows].detach().clone()
            inputs = {"advantage": advantage[rows], "old_logprob": old[rows], "weight": weights[rows]}
            loss(LossInputs(h, targets[rows], head, None, inputs)).loss_sum.backward()
        return head.weight.grad.clone()

    whole = grads([slice(0, 18)])
    split = grads([slice(0, 11), slice(11, 18)])  # two micro-batches of two sequences each
    torch.testing.assert_close(split, whole, rtol=1e-5, atol=1e-8)


def test_validation():
    with pytest.raises(ValueError, match="rl.loss.kind must be one of"):
        PolicyLoss("reinforce")
    with pytest.raises(ValueError, match="clip_low must be in"):
        PolicyLoss(clip_low=1.0)
    with pytest.raises(ValueError, match="kl_coef and entropy_coef must be >= 0"):
        PolicyLoss(kl_coef=-1)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        PolicyLoss(temperature=0.0)


def test_the_reference_is_at_kl_zero_from_the_policy_it_equals_under_bf16():
    """The start of an RL run under bf16 autocast (trainer=gpu): the reference that rl.py builds
    projects its logits as the policy's own are, so the KL between them is exactly 0; a float32
    projection (a CurioSFT teacher's) puts a KL of up to ~3e-3 per token (mean ~6e-4 here) between
    equal weights."""
    from curio.models import build_causal_lm
    from curio.rl.run import build_reference
    from curio.teacher import FrozenTeacher

    torch.manual_seed(0)
    model = build_causal_lm({"model_type": "llama", "vocab_size": 300, "hidden_size": 64, "intermediate_size": 128,
                             "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4})
    with torch.no_grad():  # logits of a trained model's size (up to ~10), where bf16 rounding shows
        model.get_output_embeddings().weight.mul_(40)
    ids = torch.randint(300, (2, 24))
    mask = torch.ones(2, 23, dtype=torch.bool)
    targets = ids[:, 1:][mask]
    given = {"advantage": torch.ones(len(targets)), "weight": torch.ones(len(targets))}
    kls = {}
    for name, reference in (("rl.py's", build_reference()), ("float32", FrozenTeacher(fp32_logits=True))):
        reference.attach(model)
        with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
            hidden = model.base_model(input_ids=ids[:, :-1]).last_hidden_state
            teacher = reference.at_loss_positions({"input_ids": ids[:, :-1]}, mask, hidden, model.get_output_embeddings())
            out = PolicyLoss(kl_coef=0.1)(LossInputs(hidden[mask], targets, model.get_output_embeddings(), teacher, given))
        kls[name] = out.token_metrics["kl"]
    assert torch.equal(kls["rl.py's"], torch.zeros_like(kls["rl.py's"]))
    assert kls["float32"].max() > 1e-5  # what the check would catch
