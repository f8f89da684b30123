"""Reading and checking ``conf/eval.yaml``: benchmarks by name, the model to load, sampling.

Light on purpose (no torch, no transformers): ``eval.py`` runs these checks on the command line's
config in about a second, before anything is loaded.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from curio.config import CONF_DIR, group_options, newest_export
from curio.errors import ConfigError, check_count
from curio.evaluation.sampling import SamplingParams

BENCHMARK_GROUP = "benchmark"
BACKENDS = ("hf", "vllm")
#: ``name`` or ``org/name``; anything else that is not an existing folder is a missing folder.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def model_shorthand(override: str) -> str:
    """``model=<folder or hub id>`` -> ``model.path=<...>``; other overrides are returned as they are.

    ``model`` is a config group of ``train.py`` (``conf/model/``), so Hydra would read the value
    as the name of one of its files.
    """
    key, sep, value = override.partition("=")
    return f"model.path={value}" if sep and key == "model" else override


def benchmark_names(cfg: DictConfig) -> list[str]:
    """``cfg.benchmarks`` as a list of names (a single name is accepted too)."""
    names = cfg.benchmarks
    if isinstance(names, str):
        return [names]
    if not isinstance(names, ListConfig) or not names:
        raise ConfigError(f"benchmarks={names}: give a list of names, e.g. benchmarks=[math500,aime24]")
    return [str(name) for name in names]


def benchmark_config(
    cfg: DictConfig, name: str, conf_dir: Path = CONF_DIR
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The resolved loader config of ``conf/benchmark/<name>.yaml`` and its sampling overrides.

    The file's ``${paths.*}`` interpolations resolve against the run's ``paths``; a top-level
    ``limit`` replaces the file's. An optional ``sampling:`` node (e.g. ``{n: 1}`` for MMLU-Pro)
    overrides the run's sampling settings for this benchmark only.
    """
    known = group_options(BENCHMARK_GROUP, conf_dir)
    if name not in known:
        raise ConfigError(f"benchmarks: no such benchmark {name!r}; choose one of {', '.join(known)}")
    node = OmegaConf.load(conf_dir / BENCHMARK_GROUP / f"{name}.yaml")
    root = OmegaConf.create({"paths": cfg.paths, BENCHMARK_GROUP: node})
    resolved: dict[str, Any] = OmegaConf.to_container(  # type: ignore[assignment]
        root[BENCHMARK_GROUP], resolve=True
    )
    sampling = resolved.pop("sampling", None) or {}
    if cfg.get("limit") is not None:
        resolved["limit"] = cfg.limit
    return resolved, sampling


def sampling_params(cfg: DictConfig, override: dict[str, Any] | None = None) -> SamplingParams:
    """The run's :class:`SamplingParams` (seeded with ``cfg.seed``), with ``override`` applied."""
    values: dict[str, Any] = OmegaConf.to_container(cfg.sampling, resolve=True)  # type: ignore[assignment]
    values = {**values, **(override or {}), "seed": cfg.seed}
    try:
        return SamplingParams(**values)
    except TypeError as err:  # an unknown key
        raise ConfigError(f"sampling: {err}") from err
    except ValueError as err:
        raise ConfigError(str(err)) from err


def resolve_model(path: str | None, log_dir: Path) -> str:
    """What ``model.path`` names: an existing HF folder (absolute path), a hub id, or, for None,
    the newest training export under ``<log_dir>/train/runs``."""
    if path is None:
        return str(newest_export(log_dir))
    folder = Path(path).expanduser()
    if folder.exists():
        if not (folder / "config.json").is_file():
            raise ConfigError(f"model={path}: not a Hugging Face model folder (no config.json)")
        return str(folder.resolve())
    if _HUB_ID.match(path):
        return path
    raise ConfigError(f"model={path}: no such folder")


#: What evaluation does when a prompt plus max_new_tokens exceeds the model's context.
CONTEXT_OVERFLOW = ("warn", "error")


def check_eval_config(cfg: DictConfig) -> str:
    """Everything that can be checked without loading anything; returns the model to load."""
    names = benchmark_names(cfg)
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"benchmarks: {', '.join(duplicates)} listed twice")
    limit = cfg.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit={limit}: must be a positive integer or null")
    for name in names:
        _, override = benchmark_config(cfg, name)
        sampling_params(cfg, override)
    if cfg.generation.backend not in BACKENDS:
        raise ConfigError(f"generation.backend={cfg.generation.backend}: choose one of {', '.join(BACKENDS)}")
    if cfg.generation.context_overflow not in CONTEXT_OVERFLOW:
        raise ConfigError(f"generation.context_overflow={cfg.generation.context_overflow}: choose one of "
                          f"{', '.join(CONTEXT_OVERFLOW)}")
    if cfg.generation.batch_size < 1:
        raise ConfigError(f"generation.batch_size={cfg.generation.batch_size}: must be >= 1")
    if cfg.generation.chunk_samples is not None:
        check_count("generation.chunk_samples", cfg.generation.chunk_samples)
    return resolve_model(cfg.model.path, Path(cfg.paths.log_dir))
