"""Config plumbing: the ``curio_root`` resolver and the command-line checks that must fail before
anything is imported (a group option or key that does not exist, a value of the wrong type, a
mandatory value left unset, a run dir that cannot be written). Values are checked by the
constructors that use them (see ``curio.components``)."""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from curio.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"

def newest_export(log_dir: str | Path) -> Path:
    """The most recently written training export, ``<log_dir>/train/runs/*/hf``."""
    runs_dir = Path(log_dir) / "train" / "runs"
    exports = [p for p in runs_dir.glob("*/hf") if (p / "config.json").is_file()]
    if not exports:
        raise ConfigError(
            f"model: no trained model found ({runs_dir}/*/hf is empty); train one with "
            "`python train.py`, or pass model=<HF folder or hub id>"
        )
    return max(exports, key=lambda p: p.stat().st_mtime)


if not OmegaConf.has_resolver("curio_root"):
    OmegaConf.register_new_resolver("curio_root", lambda: str(ROOT))
if not OmegaConf.has_resolver("newest_export"):
    # ${newest_export:${paths.log_dir}}: rl.py's default policy, the newest SFT export.
    OmegaConf.register_new_resolver("newest_export", lambda log_dir: str(newest_export(log_dir)))


def group_options(group: str, conf_dir: Path = CONF_DIR) -> list[str]:
    """The choices of a config group: its YAML files without suffix, those in subfolders as
    ``sub/name`` (``experiment=claims/curio``)."""
    folder = conf_dir / group
    return sorted(p.relative_to(folder).with_suffix("").as_posix() for p in folder.rglob("*.yaml"))


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
        # hydra/* options may come from plugins (hydra/launcher=submitit_slurm), not from conf/.
        if "." in group or "@" in group or group.startswith("hydra") or not (conf_dir / group).is_dir():
            continue
        values = value.strip("[]").split(",") if value else []
        known = group_options(group, conf_dir)
        for choice in values:
            choice = choice.strip()
            if choice == "null":
                raise ConfigError(f"{group}=null: a config group takes one of its options ({', '.join(known)}); "
                                  f"to leave it out use ~{group}")
            if choice == "" or choice in known:
                continue
            raise ConfigError(f"{group}={choice}: no such option; choose one of {', '.join(known)}")


def check_override_keys(overrides: list[str], conf_dir: Path = CONF_DIR, config_name: str = "train") -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` as ``train.py`` (or ``eval.py``) will and reject
    ``key=value`` overrides of keys that do not exist, suggesting the nearest ones (``optim.lrr``
    -> ``optim.lr``). Returns the config.

    Hydra reports these too, but as several lines plus a hint about stack traces.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    # Key overrides (optim.lr=...) are checked against the config composed with every group
    # choice (trainer=fsdp ...) applied, so a key that only a chosen option has is found.
    plain = [
        o for o in overrides
        if "=" in o and not o.startswith(("+", "~", "-", "hydra")) and not (conf_dir / o.split("=", 1)[0]).is_dir()
    ]
    groups = [o for o in overrides if o not in plain]
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(conf_dir)):
        try:
            base = compose(config_name, overrides=[o for o in groups if not o.startswith("hydra.")])
        except (HydraException, OmegaConfBaseException) as err:
            raise ConfigError(_first_line(err)) from err
        for override in plain:
            key = override.split("=", 1)[0]
            if not _has_key(base, key):
                raise ConfigError(_unknown_key_message(base, key))
        try:
            cfg = compose(config_name, overrides=[o for o in overrides if not o.startswith("hydra.")])
        except (HydraException, OmegaConfBaseException) as err:
            raise ConfigError(_first_line(err)) from err
    for override in plain:
        _check_type(base, cfg, override.split("=", 1)[0])
    return cfg


def _check_type(base: DictConfig, cfg: DictConfig, key: str) -> None:
    """A number stays a number and a flag a flag: ``optim.lr=abc`` or ``seed=abc`` fail here as
    "not a number" rather than deep inside a constructor. Keys whose default is null, a string, a
    list or a mapping take anything (their constructors check them)."""
    default = OmegaConf.select(base, key, default=None, throw_on_resolution_failure=False)
    value = OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)
    if default is None or value is None:
        return
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key}={value!r}: must be true or false")
    elif isinstance(default, (int, float)) and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ConfigError(f"{key}={value!r}: not a number (the default is {default})")


def _has_key(cfg: DictConfig, key: str) -> bool:
    """Whether ``key`` exists, also when its value is still mandatory (``???``)."""
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key, default=None) if parent_key else cfg
    return isinstance(parent, DictConfig) and leaf in parent.keys()


def _first_line(err: Exception) -> str:
    return " ".join(str(err).strip().splitlines()[:1]) or type(err).__name__


#: Names users bring from other frameworks for keys that are spelled differently here.
SYNONYMS = {"learning_rate": "lr", "wd": "weight_decay", "seed_everything": "seed", "epochs": "max_epochs",
            "num_epochs": "max_epochs", "steps": "max_steps", "batch_size": "micro_batch_size",
            "grad_accum": "accumulate_grad_batches", "gradient_accumulation_steps": "accumulate_grad_batches",
            "warmup": "warmup_steps", "max_grad_norm": "gradient_clip_val"}


def _unknown_key_message(cfg: DictConfig, key: str) -> str:
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    siblings = [str(k) for k in parent.keys()] if isinstance(parent, DictConfig) else []
    near = difflib.get_close_matches(leaf, siblings, n=3, cutoff=0.6)
    if SYNONYMS.get(leaf) in siblings:
        near = [SYNONYMS[leaf]] + [n for n in near if n != SYNONYMS[leaf]]
    hint = f"; did you mean {', '.join(f'{parent_key}.{n}' if parent_key else n for n in near)}?" if near else ""
    where = f" in {parent_key}" if parent_key and isinstance(parent, DictConfig) else ""
    return f"{key}: no such key{where}{hint} (to add a new key use +{key}=...)"


def check_mandatory_keys(cfg: DictConfig) -> None:
    """Every mandatory value (``???``, e.g. ``data.train`` of ``data=jsonl``) must be set."""
    missing = sorted(_missing_keys(cfg))
    if missing:
        raise ConfigError(f"{missing[0]}: required (the chosen config leaves it as ???); set {missing[0]}=...")


def check_run_dir(argv: list[str], cfg: DictConfig) -> None:
    """The run dir (``hydra.run.dir=...``, else under ``paths.log_dir``) must be creatable and
    writable, with space left, before Hydra creates it (Hydra's own error is a traceback)."""
    given = [a.split("=", 1)[1] for a in argv if a.startswith("hydra.run.dir=")]
    key, path = ("hydra.run.dir", given[-1]) if given else ("paths.log_dir", OmegaConf.select(cfg, "paths.log_dir"))
    path = Path(str(path)).expanduser().absolute()
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{key}={path}: cannot create the run dir, {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{key}={path}: cannot create the run dir, {existing} is not writable")
    stats = os.statvfs(existing)
    if stats.f_bavail * stats.f_frsize < MIN_FREE_BYTES:
        raise ConfigError(f"{key}={path}: no space left on the file system of {existing}")


#: Less free space than this where the run dir goes is a full disk (a config and logs need some).
MIN_FREE_BYTES = 1 << 20


def _missing_keys(node: DictConfig, prefix: str = "") -> list[str]:
    """Keys left as ``???``, found without resolving interpolations (``${hydra:...}`` cannot be
    resolved before Hydra runs)."""
    found = []
    for key in node.keys():
        if OmegaConf.is_missing(node, key):
            found.append(f"{prefix}{key}")
            continue
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            found += _missing_keys(child, f"{prefix}{key}.")
    return found


# A key is secret when its last word is one of these (hub_token, wandb_api_key, token), but not a
# tokenizer's special token (pad_token) nor a count (max_new_tokens).
_SECRET_KEY = re.compile(r"(^|[._])(token|api_?key|secret|password|access_key)$")
_SPECIAL_TOKEN_KEY = re.compile(r"(^|[._])(pad|eos|bos|unk|sep|cls|mask)_token$")


def is_secret_key(key: str) -> bool:
    key = str(key).lower()
    return bool(_SECRET_KEY.search(key)) and not _SPECIAL_TOKEN_KEY.search(key)


def redact(container: Any) -> Any:
    """A copy of a plain config container with secret-looking values replaced by ``***``."""
    if isinstance(container, dict):
        return {k: "***" if is_secret_key(k) and isinstance(v, str) and v else redact(v) for k, v in container.items()}
    if isinstance(container, list):
        return [redact(v) for v in container]
    return container
