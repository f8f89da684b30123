"""Every ``train.py`` command in the README and docs/ composes to the settings it promises: the
embedded default gets the tiny world's tuned settings, every other model or data set the authors'
(or its recipe's), never the tiny world's. A new documented command must be added here. Every
documented ``rl.py`` command composes, the authors' run to their settings."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest
import yaml

from curio.config import ROOT

# Resolved (lr, micro batch, accumulation, devices, nodes, epochs) of each documented command.
TINY = (5e-4, 16, 1, 1, 1, 1)  # conf/tuned/tiny_world-tiny_world.yaml: model and data left alone
AUTHORS_7B = (1e-5, 2, 16, 8, 1, 3)  # 2 x 16 x 8 = 256 sequences per step, 3 epochs
AUTHORS_7B_TWO_NODES = (1e-5, 2, 8, 8, 2, 3)  # 2 x 8 x 16: still 256
EXPECTED: dict[str, tuple] = {
    "": TINY,
    "loss=curio temp=entropy_guided": TINY,
    "loss=curio teacher=live": TINY,
    "loss=entropy loss.beta=0.05": TINY,
    "-m loss=ce,dft,curio seed=1,2,3": TINY,
    "loss=curio temp=entropy_guided teacher=lagged": TINY,
    "loss=curio temp=fixed temp.tau=1.2": TINY,
    "loss=entropy loss.beta=0.05 loss.top_fraction=0.2": TINY,
    "callbacks=with_sampled_eval callbacks.sampled_eval.every_n_steps=100": TINY,
    # Your own data on a hub model: the authors' lr and epochs, data=jsonl's micro-batch of 2.
    "data=jsonl data.train=my_traces.jsonl model=qwen2_5_math_1_5b trainer=gpu": (1e-5, 2, 1, 1, 1, 3),
    "experiment=qwen2_5_math_1_5b_1gpu": (1e-5, 2, 128, 1, 1, 3),
    "experiment=authors_qwen2_5_math_7b": AUTHORS_7B,
    "experiment=authors_qwen2_5_math_7b hydra.run.dir=outputs/train/runs/qwen7b_curio": AUTHORS_7B,
    "experiment=authors_qwen2_5_math_7b hydra.run.dir=outputs/train/runs/qwen7b_curio "
    "ckpt_path=outputs/train/runs/qwen7b_curio/checkpoints/last.ckpt": AUTHORS_7B,
    "-m hydra/launcher=slurm hydra.launcher.partition=gpu experiment=authors_qwen2_5_math_7b trainer=fsdp "
    "trainer.devices=8 seed=1,2,3 ckpt_path=auto": AUTHORS_7B,
    # LoRA on SmolLM2 with the embedded data: the authors' lr and epochs, the tiny world's micro-batch.
    "model=smollm2_135m model.lora.rank=16 loss=curio teacher=lagged": (1e-5, 8, 1, 1, 1, 3),
    "experiment=authors_qwen2_5_math_7b trainer.num_nodes=2 trainer.accumulate_grad_batches=8 "
    "hydra.run.dir=/shared/runs/qwen7b_curio": AUTHORS_7B_TWO_NODES,
    "experiment=authors_qwen2_5_math_7b trainer.num_nodes=2 trainer.accumulate_grad_batches=8 "
    "hydra.run.dir=/shared/runs/$SLURM_JOB_ID ckpt_path=auto": AUTHORS_7B_TWO_NODES,
}


def documented_commands(script: str = "train.py", placeholders: bool = False) -> list[str]:
    """The arguments of every ``script`` command in a code block of README.md and docs/*.md (those
    with ``<placeholders>`` only if asked)."""
    commands = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        blocks = re.findall(r"```[a-z]*\n(.*?)```", path.read_text(), flags=re.S)
        for block in blocks:
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split(" #")[0].strip()
                if line.startswith("#") or f"{script}" not in line or ("<" in line and not placeholders):
                    continue
                commands.append(" ".join(line.split(script, 1)[1].split()))
    return commands


def compose_args(args: str) -> list[str]:
    """Overrides Hydra can compose here: sweeps take their first value, hydra.* (run dirs, the
    SLURM launcher) are left out."""
    overrides = []
    for token in shlex.split(args):
        if token in ("-m", "--multirun") or token.startswith("hydra"):
            continue
        key, equals, value = token.partition("=")
        if "," in value and not value.startswith("["):
            value = value.split(",")[0]
        overrides.append(f"{key}={value}" if equals else token)  # ~group (drop a default) has no value
    return overrides


COMMANDS = documented_commands()


def test_commands_found():
    assert len(COMMANDS) >= 10 and "" in COMMANDS  # `python train.py` alone is documented


@pytest.mark.parametrize("args", COMMANDS)
def test_documented_command_resolves_to_its_settings(args, compose_cfg, tmp_path):
    cfg = compose_cfg(compose_args(args), tmp_path)
    got = (cfg.optim.lr, cfg.data.micro_batch_size, cfg.trainer.accumulate_grad_batches, cfg.trainer.devices,
           cfg.trainer.num_nodes, cfg.trainer.max_epochs)
    assert args in EXPECTED, f"documented command {args!r} resolves to {got}: add it to EXPECTED"
    assert got == EXPECTED[args]


def test_the_authors_recipe_is_their_run(compose_cfg, tmp_path):
    """Spec section 8, key by key."""
    cfg = compose_cfg(["experiment=authors_qwen2_5_math_7b"], tmp_path)
    assert cfg.model.name == "qwen2_5_math_7b" and cfg.data.train == "Elliott/Openr1-Math-46k-8192"
    assert cfg.data.format == "authors" and cfg.data.max_prompt_tokens == 1024 and cfg.data.max_response_tokens == 8192
    assert cfg.loss._target_ == "curio.losses.CurioLoss" and cfg.loss.lam == 1.0
    assert cfg.temp._target_.endswith("EntropyGuidedTemperature")
    assert (cfg.teacher.sync_every, cfg.teacher.alpha) == (5, 0.99)
    assert cfg.data.micro_batch_size * cfg.trainer.accumulate_grad_batches * cfg.trainer.devices == 256
    assert (cfg.optim.lr, tuple(cfg.optim.betas), cfg.optim.weight_decay) == (1e-5, (0.9, 0.999), 0.01)
    assert (cfg.sched.warmup_steps, cfg.sched.warmup_start_factor, cfg.sched.horizon_multiplier) == (60, 1e-4, 4.0)
    assert cfg.trainer.gradient_clip_val == 1.0 and cfg.trainer.max_epochs == 3
    assert cfg.trainer.strategy._target_ == "curio.parallel.FSDP2Strategy"
    assert cfg.trainer.strategy.mixed_precision == "auto"  # bf16 on GPUs over fp32 master weights
    assert cfg.module.gradient_checkpointing is True


def test_cfg_job_shows_a_hub_models_own_settings(repo_root):
    """The README's example, as a user types it: no tiny-world lr, batch or epochs."""
    result = subprocess.run([sys.executable, "train.py", "model=qwen2_5_math_1_5b", "data=jsonl",
                             "data.train=x.jsonl", "--cfg", "job"], cwd=repo_root, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    cfg = yaml.safe_load(result.stdout)
    assert (cfg["optim"]["lr"], cfg["data"]["micro_batch_size"], cfg["trainer"]["max_epochs"]) == (1e-5, 2, 3)


RL_COMMANDS = documented_commands("rl.py", placeholders=True)


@pytest.mark.parametrize("args", RL_COMMANDS)
def test_documented_rl_command_composes(args, compose_cfg, tmp_path):
    """Every documented ``rl.py`` command composes and resolves (placeholders filled with a folder);
    the authors' GPU run is their settings (spec section 11) with vLLM rollouts under FSDP2."""
    from omegaconf import OmegaConf

    from rl import model_shorthand

    filled = re.sub(r"<[^>]*>", str(tmp_path), args)
    overrides = [model_shorthand(a) for a in compose_args(filled)]
    if not any(a.startswith("model") for a in overrides):  # the newest SFT export: here, a folder
        overrides.append(f"model.path={tmp_path}")
    cfg = compose_cfg(overrides, tmp_path, config_name="rl")
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    if "rl=authors" in args:
        got = (cfg.rl.group_size, cfg.rl.prompts_per_step, cfg.rl.mini_batches, cfg.rl.updates_per_rollout,
               cfg.optim.lr, cfg.optim.weight_decay, cfg.rl.max_grad_norm, cfg.rl.sampling.temperature,
               cfg.rl.sampling.max_new_tokens, cfg.prompts.max_prompt_tokens, cfg.rl.loss.kind, cfg.rl.loss.kl_coef,
               cfg.rl.aggregation, cfg.rl.reward.require_think_close, cfg.trainer.max_epochs)
        assert got == (8, 128, 4, 1, 1e-6, 0.01, 1.0, 1.0, 8192, 1024, "authors", 0.0, "constant", True, 12)
    if "rollout=vllm" in args:
        assert cfg.rollout._target_ == "curio.rl.backends.VLLMRollout"
        assert cfg.trainer.strategy._target_ == "curio.parallel.FSDP2Strategy"


def test_rl_commands_found():
    assert len(RL_COMMANDS) >= 4 and sum("rl=authors" in c for c in RL_COMMANDS) == 2
