"""The YAMLs of losses, temperature rules and teachers: each builds its class with the defaults."""

from __future__ import annotations

import inspect

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from curio.config import CONF_DIR
from curio.losses import AnchoredLoss, CurioLoss, DFTLoss, EAFTLoss, EntropyRegularizedLoss, GEMLoss, PSFTLoss, SEDLoss
from curio.teacher import EmaTeacher, FrozenTeacher, LaggedTeacher, LiveTeacher
from curio.temperature import EntropyGuidedTemperature, FixedTemperature

GROUPS = {
    ("loss", "entropy"): EntropyRegularizedLoss,
    ("loss", "dft"): DFTLoss,
    ("loss", "curio"): CurioLoss,
    ("loss", "gem"): GEMLoss,
    ("loss", "psft"): PSFTLoss,
    ("loss", "asft"): AnchoredLoss,
    ("loss", "eaft"): EAFTLoss,
    ("loss", "sed"): SEDLoss,
    ("temp", "entropy_guided"): EntropyGuidedTemperature,
    ("temp", "fixed"): FixedTemperature,
    ("teacher", "lagged"): LaggedTeacher,
    ("teacher", "ema"): EmaTeacher,
    ("teacher", "frozen"): FrozenTeacher,
    ("teacher", "live"): LiveTeacher,
    ("teacher", "snapshot"): LaggedTeacher,
}
# Options that are a class with other settings than its defaults (the snapshot: a lagged teacher
# synced fully every 8 steps).
PRESETS = {("teacher", "snapshot"): {"sync_every": 8, "alpha": 1.0}}
# Losses that choose their teacher (their files are `# @package _global_`), and which.
TEACHER_OF = {"psft": ("snapshot", LaggedTeacher), "asft": ("frozen", FrozenTeacher),
              "sft_kl": ("frozen", FrozenTeacher)}


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name=None, overrides=list(overrides))


@pytest.mark.parametrize(("group", "name"), list(GROUPS))
def test_yaml_lists_every_constructor_argument_with_its_default(group: str, name: str) -> None:
    cls = GROUPS[(group, name)]
    if group == "loss":  # in the train config: a loss file may choose its teacher
        node = _compose_train(f"loss={name}").loss
    else:
        extra = [] if group == "temp" else ["+temp=entropy_guided"]  # curio.yaml reads ${temp}
        node = _compose(f"+{group}={name}", *extra)[group]
    signature = inspect.signature(cls).parameters.items()
    params = {k: p.default for k, p in signature if k not in ("self", "temperature")}
    keys = set(node) - {"_target_", "temperature"}
    assert keys == set(params), f"{group}/{name}.yaml keys {sorted(keys)} != arguments {sorted(params)}"
    for key, default in {**params, **PRESETS.get((group, name), {})}.items():
        assert node[key] == default, f"{group}/{name}.yaml: {key}={node[key]}, class default {default}"
    assert type(instantiate(node)) is cls


def _compose_train(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


@pytest.mark.parametrize("loss", sorted(TEACHER_OF))
def test_a_loss_that_reads_a_particular_teacher_chooses_it(loss: str) -> None:
    """loss=psft gets the snapshot, loss=asft / sft_kl the frozen start model; a teacher on the
    command line still wins; other losses keep the default (lagged)."""
    option, cls = TEACHER_OF[loss]
    cfg = _compose_train(f"loss={loss}")
    assert type(instantiate(cfg.teacher)) is cls and cfg.teacher == _compose(f"+teacher={option}").teacher
    assert type(instantiate(_compose_train(f"loss={loss}", "teacher=ema").teacher)) is EmaTeacher
    assert type(instantiate(_compose_train("loss=curio").teacher)) is LaggedTeacher


def test_sft_kl_is_the_anchored_loss_with_cross_entropy() -> None:
    loss = instantiate(_compose_train("loss=sft_kl").loss)
    assert isinstance(loss, AnchoredLoss) and loss.fit == "ce" and loss.kl_coef == 0.1


def test_curio_takes_the_top_level_temp_group() -> None:
    cfg = _compose("+loss=curio", "+temp=fixed")
    loss = instantiate(cfg.loss)
    assert isinstance(loss.temperature, FixedTemperature) and loss.temperature.tau == 1.3
    cfg = _compose("+loss=curio", "+temp=entropy_guided", "temp.tau_max=1.7")
    assert instantiate(cfg.loss).temperature.tau_max == 1.7


def test_train_config_composes_curio_with_temp_and_teacher(compose_cfg) -> None:
    cfg = compose_cfg(["loss=curio", "temp=entropy_guided", "teacher=ema"])
    loss, teacher = instantiate(cfg.loss), instantiate(cfg.teacher)
    assert isinstance(loss.temperature, EntropyGuidedTemperature)
    assert isinstance(teacher, EmaTeacher) and teacher.alpha == 0.01
    assert OmegaConf.select(cfg, "loss.temperature._target_") == "curio.temperature.EntropyGuidedTemperature"
