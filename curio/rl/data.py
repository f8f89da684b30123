"""The RL stage's prompts: problems with ground truths, shuffled each epoch and dealt out a rollout
step at a time (``prompts_per_step`` over all ranks), with a resumable position."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import lightning as L
from torch.utils.data import DataLoader, Dataset

from curio.data.datamodule import ResumableDataLoader
from curio.data.sampling import StepLayout, StepWindowSampler
from curio.errors import ConfigError, check_count
from curio.evaluation.benchmark import Benchmark, Problem
from curio.evaluation.sampled import render_prompt

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prompt:
    """A problem and its prompt's token ids (chat template and generation prompt applied)."""

    problem: Problem
    ids: tuple[int, ...]


class _Prompts(Dataset):
    def __init__(self, prompts: list[Prompt]):
        self.prompts = prompts

    def __len__(self) -> int:
        return len(self.prompts)

    def __getitem__(self, key: tuple[int, int]) -> Prompt:
        return self.prompts[key[0]]


def _as_list(prompts: list[Prompt]) -> list[Prompt]:
    return prompts


class PromptDataModule(L.LightningDataModule):
    """Args:
    tokenizer: the policy's tokenizer (renders the prompts; saved with the export).
    problems: the prompts and ground truths, as a benchmark loader builds them (``conf/prompts/``;
        e.g. the tiny world's training problems, the authors' parquet, a JSONL file).
    prompts_per_step: prompts of one rollout step, over all ranks (a multiple of the ranks).
    max_prompt_tokens: prompts longer than this (chat template applied) are dropped and counted, as
        the authors did (1024); None keeps every prompt.
    seed: the shuffle's seed (each epoch shuffles with ``seed + epoch``).
    """

    def __init__(self, tokenizer, problems: Benchmark, prompts_per_step: int = 16,
                 max_prompt_tokens: int | None = None, seed: int = 0):
        super().__init__()
        check_count("rl.prompts_per_step", prompts_per_step)
        self.tokenizer = tokenizer
        self.problems = problems
        self.prompts_per_step = prompts_per_step
        self.max_prompt_tokens = max_prompt_tokens
        self.seed = seed
        self.layout: StepLayout | None = None
        self.prompts: list[Prompt] = []

    @property
    def grader(self) -> str:
        return self.problems.grader

    def setup(self, stage: str | None = None) -> None:
        if self.layout is not None:
            return
        world = self.trainer.world_size if self.trainer else 1
        if self.prompts_per_step % world:
            raise ConfigError(f"rl.prompts_per_step={self.prompts_per_step} must be a multiple of the "
                              f"{world} ranks (every rank samples its own prompts)")
        # Rendered once, now: a template that cannot render them fails before the model loads.
        rendered = [Prompt(p, tuple(render_prompt(self.tokenizer, p.prompt))) for p in self.problems.problems]
        self.prompts = [p for p in rendered if self.max_prompt_tokens is None or len(p.ids) <= self.max_prompt_tokens]
        self.layout = StepLayout(self.prompts_per_step // world, 1, world)
        self.layout.check_fits(len(self.prompts))
        dropped = "" if self.max_prompt_tokens is None else \
            f", {len(rendered) - len(self.prompts)} dropped over {self.max_prompt_tokens} tokens"
        log.info("prompts: %d problems%s, %d per rollout step, %d steps per epoch", len(rendered), dropped,
                 self.prompts_per_step, self.steps_per_epoch())

    def steps_per_epoch(self) -> int:
        """Rollout steps in one pass over the prompts (incomplete steps are dropped)."""
        assert self.layout is not None, "call setup() first"
        return self.layout.steps(len(self.prompts))

    def train_dataloader(self) -> DataLoader:
        assert self.layout is not None, "call setup() first"
        n = len(self.prompts)
        sampler = StepWindowSampler(lengths=[0] * n, loss_tokens=[0] * n, layout=self.layout,
                                    rank=self.trainer.global_rank if self.trainer else 0, seed=self.seed,
                                    group_by_length=False)
        return ResumableDataLoader(_Prompts(self.prompts), batch_sampler=sampler, collate_fn=_as_list,
                                   progress=self._rollouts_done)

    def _rollouts_done(self) -> int:
        return self.trainer.fit_loop.epoch_loop.batch_progress.current.processed
