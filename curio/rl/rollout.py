"""One rollout step: G samples for each prompt, their rewards and group-relative advantages, and
the micro-batches an update trains on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from curio.data.collate import Collator, SFTBatch
from curio.evaluation.generation import Generator
from curio.evaluation.grading import GraderKind
from curio.evaluation.sampling import Sample, SamplingParams
from curio.rl.advantages import group_advantages
from curio.rl.data import Prompt
from curio.rl.rewards import Reward


@dataclass
class Rollout:
    """A rollout step's groups: ``samples[prompt][k]`` for G samples per prompt.

    Attributes:
        prompts: each prompt's token ids (chat template applied).
        samples: G samples per prompt, with their token ids and the sampler's log-probabilities.
        rewards: ``[P, G]`` rewards.
        advantages: ``[P, G]`` group-relative advantages.
        failed_rewards: responses whose grading failed or timed out (scored 0).
    """

    prompts: list[list[int]]
    samples: list[list[Sample]]
    rewards: Tensor
    advantages: Tensor
    failed_rewards: int

    @property
    def group_size(self) -> int:
        return self.rewards.shape[1]

    def sequences(self) -> list[tuple[int, int]]:
        """``(prompt, sample)`` of every sequence, group by group."""
        return [(p, k) for p in range(len(self.samples)) for k in range(self.group_size)]


def sample_rollout(prompts: Sequence[Prompt], kind: GraderKind, generator: Generator, params: SamplingParams,
                   reward: Reward, scale_by_std: bool) -> Rollout:
    """Sample ``params.n`` responses per prompt, reward them, and centre the rewards per group."""
    ids = [list(p.ids) for p in prompts]
    samples = generator.generate(ids, params, desc="rollout")
    flat = reward([s.text for per_prompt in samples for s in per_prompt],
                  [p.problem.ground_truth for p in prompts for _ in range(params.n)], kind)
    rewards = torch.tensor(flat.values, dtype=torch.float32).view(len(prompts), params.n)
    return Rollout(ids, samples, rewards, group_advantages(rewards, scale_by_std), flat.failed)


@dataclass
class MicroBatch:
    """Sequences of a rollout laid out for one forward pass.

    Attributes:
        batch: prompt + response tokens, labels on the response tokens only.
        sequences: ``(prompt, sample)`` of each row.
        advantage: ``[N]`` each loss token's advantage (its sequence's), in the order of
            ``batch.labels != -100``.
        lengths: response tokens of each row.
    """

    batch: SFTBatch
    sequences: list[tuple[int, int]]
    advantage: Tensor
    lengths: list[int]


def micro_batches(rollout: Rollout, sequences: Sequence[tuple[int, int]], size: int, pad_token_id: int) -> list[MicroBatch]:
    """``sequences`` in micro-batches of ``size`` rows, in order (a group stays together when
    ``size`` is a multiple of the group size)."""
    collate = Collator(pad_token_id=pad_token_id)
    out = []
    for start in range(0, len(sequences), size):
        rows = list(sequences[start : start + size])
        items, advantage, lengths = [], [], []
        for p, k in rows:
            prompt, response = rollout.prompts[p], list(rollout.samples[p][k].token_ids)
            items.append({"input_ids": prompt + response, "loss_mask": [0] * len(prompt) + [1] * len(response)})
            advantage.append(rollout.advantages[p, k].expand(len(response)))
            lengths.append(len(response))
        out.append(MicroBatch(collate(items), rows, torch.cat(advantage), lengths))
    return out
