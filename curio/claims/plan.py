"""What a claims study runs: worlds, presets, and where each job's outputs live.

Every trained model is ``conf/experiment/claims/<experiment>.yaml`` at one seed, on the preset's
world (the first tiny world, or the fork world of ``docs/claims_v2_protocol.md``). Every model,
the base included, is evaluated and probed. A study's folder holds::

    train/<experiment>/seed<S>/        train.py run dir (hf/ is the model)
    rl/<experiment>/seed<S>/           rl.py run dir from that model (presets with an RL stage)
    eval/<key>/seed<S>/                eval.py run dir (results.json, samples.jsonl)
    probe/<key>/seed<S>.json           teacher-forced entropy and tau by token label
    (experiment "base" is the shipped base model: no train/, one seed; <key> is the experiment
    after SFT, <experiment>+rl after RL)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from curio.config import ROOT

BASE = "base"


@dataclass(frozen=True)
class World:
    """Where a study runs.

    Attributes:
        name: ``tiny`` or ``fork``.
        title: how the report names it.
        assets: the world's folder (``base/``, ``sft_val.jsonl``, ...).
        benchmarks: the test sets every model answers (conf/benchmark/), with their short names.
        train_overrides: what points ``train.py experiment=claims/<name>`` at this world (the
            experiment files pin the first world's model and data; the command line wins).
        fork_metric: the probe's entropy the claims call "forks": the first world has only step
            choices; the fork world's forks are its step choices and its wording forks.
        report: where the full preset's report goes.
        prompts: the ``rl.py`` prompts group of its RL stage (conf/prompts/).
    """

    name: str
    title: str
    assets: Path
    benchmarks: dict[str, str]
    train_overrides: tuple[str, ...]
    fork_metric: str
    report: Path
    prompts: str

    @property
    def base_model(self) -> Path:
        return self.assets / "base"

    @property
    def sft_val(self) -> Path:
        return self.assets / "sft_val.jsonl"


TINY = World(
    "tiny", "the tiny world", ROOT / "assets" / "tiny_world", {"tiny_id": "id", "tiny_ood": "ood"}, (),
    "H/choice", ROOT / "docs" / "results_tiny.md", "tiny_world",
)
FORK = World(
    "fork", "the fork world", ROOT / "assets" / "fork_world", {"fork_id": "id", "fork_ood": "ood"},
    ("model=fork_world", "data=fork_world"), "H/fork", ROOT / "docs" / "results_fork.md", "fork_world",
)

#: The experiments the five questions compare (conf/experiment/claims/<name>.yaml), in run order:
#: the ones most questions need first, the large entropy bonus (slowest to evaluate: it rambles) last.
QUESTION_EXPERIMENTS: tuple[str, ...] = (
    "ce", "curio", "curio_fixed", "curio_live", "dft", "entropy_small", "entropy_large",
)
#: The field's other entropy-aware objectives (docs/method.md), placed on the same axes.
BASELINES: tuple[str, ...] = ("gem", "psft", "asft", "sft_kl", "eaft", "sed")
#: Every claims experiment, in run order.
EXPERIMENTS: tuple[str, ...] = QUESTION_EXPERIMENTS + BASELINES


@dataclass(frozen=True)
class Preset:
    """A study's size.

    Attributes:
        name: the preset's name (also the default study folder's name).
        world: where it runs.
        seeds: training seeds; each model is sampled with its training seed too.
        samples: samples per test problem (pass@k is reported up to k = samples).
        limit: test problems per set (the first ``limit`` of test_id and test_ood).
        probe_rows: held-out demonstrations (sft_val) for the teacher-forced probes.
        experiments: which claims experiments to train.
        train_overrides: extra train.py overrides (the smoke preset shortens training).
        rl: whether every SFT model then runs the RL stage (``rl.py`` with the world's prompts and
            its tuned settings, conf/tuned/rl-export-<prompts>.yaml) and is evaluated again.
        rl_overrides: extra rl.py overrides (shorter RL for the quick and smoke presets).
        max_new_tokens: generation cap; the longest OOD solution is well under it, and a model that
            rambles (a large entropy bonus) costs no more than this per sample.
        eval_batch_size: sequences per generate call (a batch holds whole problems' samples).
    """

    name: str
    world: World
    seeds: tuple[int, ...]
    samples: int
    limit: int
    probe_rows: int = 200
    experiments: tuple[str, ...] = EXPERIMENTS
    train_overrides: tuple[str, ...] = ()
    rl: bool = False
    rl_overrides: tuple[str, ...] = ()
    max_new_tokens: int = 320
    eval_batch_size: int = 64


_SMOKE_TRAINING = ("trainer.max_steps=2", "trainer.val_check_interval=2", "+trainer.limit_val_batches=1")
#: The fork study's GRPO runs keep no reference model: with the KL's weight 0 it was only logged
#: (amendment A9 in docs/claims_v2_protocol.md has the measurement).
_FORK_RL = ("rl.reference=false",)

PRESETS: dict[str, Preset] = {
    # The committed report (docs/results_tiny.md).
    "full": Preset(name="full", world=TINY, seeds=(0, 1, 2), samples=64, limit=40),
    # One seed, fewer samples, the questions' experiments only: a first look in about a quarter of
    # an hour on 2 CPU cores.
    "quick": Preset(name="quick", world=TINY, seeds=(0,), samples=16, limit=50, experiments=QUESTION_EXPERIMENTS),
    # Seconds per job: checks the machinery end to end (tests).
    "smoke": Preset(name="smoke", world=TINY, seeds=(0,), samples=2, limit=2, probe_rows=4,
                    experiments=("ce", "curio"), train_overrides=_SMOKE_TRAINING, eval_batch_size=8),
    # The fork world's study, SFT then GRPO, as docs/claims_v2_protocol.md registers it.
    # Run in the protocol's order: the models claims 1, 3, 4, 6, 7 need, then 2 and 5, then the rest.
    # Batches of 256 samples (4 problems) since amendment A9 (its measurement is there); models
    # recorded before it were sampled in batches of 64.
    "fork_full": Preset(name="fork_full", world=FORK, seeds=(0, 1, 2), samples=64, limit=200, rl=True,
                        experiments=("ce", "curio", "curio_fixed", "entropy_large", "curio_live", "dft",
                                     "entropy_small", *BASELINES), rl_overrides=_FORK_RL, eval_batch_size=256),
    "fork_quick": Preset(name="fork_quick", world=FORK, seeds=(0,), samples=8, limit=50, experiments=("ce", "curio"),
                         rl=True, rl_overrides=("trainer.max_steps=20", *_FORK_RL)),
    "fork_smoke": Preset(name="fork_smoke", world=FORK, seeds=(0,), samples=2, limit=2, probe_rows=4,
                         experiments=("ce", "curio"), train_overrides=_SMOKE_TRAINING, eval_batch_size=8, rl=True,
                         rl_overrides=("trainer.max_steps=4", "rl.prompts_per_step=4", "rl.group_size=4",
                                       "rl.sampling.max_new_tokens=64", *_FORK_RL)),
}


@dataclass(frozen=True)
class Job:
    """One model of the study: an experiment at a seed after a stage (``sft``, or ``rl`` from that SFT
    model); the base model has experiment ``base``."""

    experiment: str
    seed: int
    root: Path = field(compare=False)
    world: World = field(default=TINY, compare=False)
    stage: str = "sft"

    @property
    def key(self) -> str:
        """The model's name in the tables: the experiment, with ``+rl`` after the RL stage."""
        return self.experiment if self.stage == "sft" else f"{self.experiment}+rl"

    @property
    def name(self) -> str:
        return f"{self.key}/seed{self.seed}"

    @property
    def sft(self) -> Job:
        """The SFT model an RL job starts from (itself for an SFT job)."""
        return Job(self.experiment, self.seed, self.root, self.world)

    @property
    def train_dir(self) -> Path:
        return self.root / ("train" if self.stage == "sft" else "rl") / self.experiment / f"seed{self.seed}"

    @property
    def model_dir(self) -> Path:
        return self.world.base_model if self.experiment == BASE else self.train_dir / "hf"

    @property
    def eval_dir(self) -> Path:
        return self.root / "eval" / self.key / f"seed{self.seed}"

    @property
    def probe_file(self) -> Path:
        return self.root / "probe" / self.key / f"seed{self.seed}.json"


def jobs(preset: Preset, root: Path) -> list[Job]:
    """The base model once (it is not trained, so one sampling seed), then every experiment x seed,
    each SFT model followed by its RL run when the preset has an RL stage."""
    stages = ("sft", "rl") if preset.rl else ("sft",)
    return [Job(BASE, preset.seeds[0], root, preset.world)] + [
        Job(experiment, seed, root, preset.world, stage)
        for experiment in preset.experiments for seed in preset.seeds for stage in stages
    ]
