"""Every option of every config group composes, and the defaults are what the docs say."""

import pytest
from hydra.utils import instantiate
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from curio.config import CONF_DIR, check_group_overrides, group_options
from curio.errors import ConfigError

# benchmark/ and eval/ belong to eval.yaml, not train.yaml; experiment/ files are smoke-run in their
# own test.
GROUPS = sorted(p.name for p in CONF_DIR.iterdir()
                if p.is_dir() and p.name not in ("experiment", "hydra", "benchmark", "eval"))
RL_ONLY = ("rl", "prompts", "rollout")  # groups of rl.yaml alone
# Options of shared groups made for rl.yaml (they read rl.* keys) compose with it.
RL_OPTIONS = {("tuned", "rl-export-tiny_world"), ("callbacks", "rl_with_sampled_eval")}
CASES = [(group, option) for group in GROUPS if group not in RL_ONLY for option in group_options(group)
         if (group, option) not in RL_OPTIONS]
RL_CASES = [(group, option) for group in RL_ONLY for option in group_options(group)] + sorted(RL_OPTIONS)


@pytest.mark.parametrize(("group", "option"), CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_every_group_option_composes_and_resolves(compose_cfg, tmp_path, group, option):
    overrides = [f"{group}={option}"]
    if group == "data" and option in ("jsonl",):
        overrides.append("data.train=x.jsonl")
    if group == "model" and option == "export":
        overrides.append(f"model.path={tmp_path}")  # not the newest export: a clean checkout has none
    cfg = compose_cfg(overrides, tmp_path)
    assert HydraConfig.get().runtime.choices[group] == option
    # Everything resolves (interpolations point at real keys), hub configs included.
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)


@pytest.mark.parametrize(("group", "option"), RL_CASES, ids=[f"{g}={o}" for g, o in RL_CASES])
def test_every_rl_group_option_composes_and_resolves(compose_cfg, tmp_path, group, option, sums_jsonl):
    overrides = [f"{group}={option}", f"model.path={tmp_path}"]
    if group == "prompts" and option != "tiny_world":
        overrides.append(f"prompts.problems.path={sums_jsonl}")
    cfg = compose_cfg(overrides, tmp_path, config_name="rl")
    assert HydraConfig.get().runtime.choices[group] == option
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    if group == "rollout":  # builds without vLLM installed: the engine starts on the first rollout
        assert type(instantiate(cfg.rollout)).__name__ == {"hf": "HFRollout", "vllm": "VLLMRollout"}[option]


def test_loss_group_is_the_single_place_a_loss_is_chosen(compose_cfg, tmp_path):
    cfg = compose_cfg(["loss=ce"], tmp_path)
    loss = instantiate(cfg.loss)
    assert type(loss).__name__ == "CrossEntropyLoss"
    for key in ("model", "data", "trainer", "optim"):
        assert "loss" not in OmegaConf.to_container(cfg[key]), f"{key} must not choose a loss"


def test_primary_defaults_list_covers_every_group():
    defaults = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "train.yaml").defaults)
    named = {(next(iter(d)) if isinstance(d, dict) else d).removeprefix("optional ") for d in defaults}
    for group in ("model", "data", "loss", "temp", "optim", "sched", "trainer", "logger", "callbacks", "paths",
                  "tuned", "experiment", "hydra"):
        assert group in named, group


def test_the_groups_carry_the_authors_settings(compose_cfg, tmp_path):
    # Any model-data pair without a tuned file: the groups' own defaults (spec section 8).
    cfg = compose_cfg(["model=tiny", "data=jsonl", "data.train=x.jsonl"], tmp_path)
    assert cfg.optim.lr == 1e-5 and list(cfg.optim.betas) == [0.9, 0.999] and cfg.optim.weight_decay == 0.01
    assert cfg.sched.warmup_steps == 60 and cfg.sched.warmup_start_factor == 1e-4
    assert cfg.sched.min_lr_ratio == 1e-4 and cfg.sched.horizon_multiplier == 4.0
    assert cfg.trainer.gradient_clip_val == 1.0 and cfg.trainer.max_epochs == 3
    assert cfg.module.aggregation == "step_token_mean"


def test_tuned_settings_reach_only_their_model_and_data(compose_cfg, tmp_path):
    tuned = compose_cfg([], tmp_path)  # the embedded default: the tiny world's base on its data
    assert (tuned.optim.lr, tuned.data.micro_batch_size, tuned.trainer.max_epochs) == (5e-4, 16, 1)
    for other in (["model=smollm2_135m"], ["data=jsonl", "data.train=x.jsonl"], ["model=qwen2_5_math_1_5b"]):
        cfg = compose_cfg(other, tmp_path)
        assert (cfg.optim.lr, cfg.trainer.max_epochs) == (1e-5, 3), other
        assert HydraConfig.get().runtime.choices["tuned"] not in group_options("tuned"), other


def test_readme_lists_every_option_of_every_group(repo_root):
    table = (repo_root / "README.md").read_text().split("| group | options | what it picks |")[1].split("\n\n")[0]
    rows = {}
    for line in table.splitlines()[2:]:
        groups, options = line.split("|")[1:3]
        for group in groups.replace("`", "").split(","):
            rows[group.strip()] = options
    for group in GROUPS + ["experiment"]:
        assert group in rows, f"README's group table has no row for {group}"
        listed = {o.strip().strip("`") for o in rows[group].split(":")[-1].split(",")}
        missing = [o for o in group_options(group) if o not in listed and not (group == "experiment" and "/" in o)]
        assert not missing, f"README's {group} row lacks {missing}"


@pytest.mark.parametrize("override", ["loss=nope", "model=gpt5", "loss=ce,nope", "+trainer=nope"])
def test_unknown_group_option_names_key_and_choices(override):
    with pytest.raises(ConfigError) as info:
        check_group_overrides([override])
    message = str(info.value)
    group = override.split("=")[0].lstrip("+")
    assert f"{group}=" in message and "choose one of" in message and "\n" not in message
    assert all(option in message for option in group_options(group))


def test_known_options_and_plain_keys_pass():
    check_group_overrides(["loss=ce", "model=tiny,smollm2_135m", "optim.lr=1e-5", "experiment=claims/ce", "-m"])
