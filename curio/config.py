"""Config plumbing: the ``curio_root`` resolver and checks that run before anything is loaded."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from curio.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"

if not OmegaConf.has_resolver("curio_root"):
    OmegaConf.register_new_resolver("curio_root", lambda: str(ROOT))


def group_options(group: str, conf_dir: Path = CONF_DIR) -> list[str]:
    """The choices of a config group (the YAML files of its folder, without suffix)."""
    return sorted(p.stem for p in (conf_dir / group).glob("*.yaml"))


def check_group_overrides(overrides: list[str], conf_dir: Path = CONF_DIR) -> None:
    """Reject ``group=option`` overrides whose option does not exist, naming the choices.

    Hydra would report this too, but as a multi-line error after composing; this is one line.
    Sweeps (``loss=ce,curio``) and ``null`` are understood.
    """
    for override in overrides:
        if "=" not in override or override.startswith("-"):
            continue
        key, value = override.split("=", 1)
        group = key.lstrip("+~")
        if "." in group or "@" in group or not (conf_dir / group).is_dir():
            continue
        values = value.strip("[]").split(",") if value else []
        known = group_options(group, conf_dir)
        for choice in values:
            choice = choice.strip()
            if choice in ("null", "") or choice in known:
                continue
            raise ConfigError(f"{group}={choice}: no such option; choose one of {', '.join(known)}")
