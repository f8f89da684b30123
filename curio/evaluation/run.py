"""Build everything from the composed eval config and run it: the body of ``eval.py``.

Cheapest first: the config is checked and every benchmark loaded before the model, so a typo
or a missing file fails in seconds. Benchmarks then run one at a time, each written to the run
dir as soon as it is graded, and its finished batches as they are sampled
(:class:`~curio.evaluation.results.ResultsStore`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from curio.cpu_allocator import keep_freed_memory
from curio.errors import ConfigError
from curio.evaluation.eval_config import benchmark_config, benchmark_names, check_eval_config, sampling_params
from curio.evaluation.generation import Generator, HFGenerator
from curio.evaluation.grading import Grader
from curio.evaluation.loaders import BenchmarkError
from curio.evaluation.report import plot_pass_at_k, results_table
from curio.evaluation.results import ResultsStore
from curio.evaluation.sampled import run_benchmark
from curio.models import load_causal_lm, load_tokenizer
from curio.cli import build, save_run_config

log = logging.getLogger(__name__)

PLOT = "pass_at_k.png"
TABLE = "results.md"


def _settings(cfg: DictConfig, model: str) -> dict[str, Any]:
    """What the numbers depend on besides the benchmarks: a resumed run must match these."""
    return {
        "model": {"path": model, **{k: cfg.model[k] for k in ("chat_template", "dtype", "revision")}},
        "backend": cfg.generation.backend,
        "seed": cfg.seed,
        "limit": cfg.limit,
        "sampling": OmegaConf.to_container(cfg.sampling, resolve=True),
        "require_think_close": cfg.grading.require_think_close,
    }


def _load(cfg: DictConfig, model: str) -> tuple[Any, Generator]:
    """The tokenizer (it renders prompts for every backend) and the chosen generation backend."""
    options = {"trust_remote_code": cfg.model.trust_remote_code, "revision": cfg.model.revision}
    try:
        tokenizer = load_tokenizer(model, chat_template=cfg.model.chat_template, **options)
        if cfg.generation.backend == "vllm":
            from curio.evaluation.vllm_generation import VLLMGenerator  # vLLM is optional

            vllm_options = OmegaConf.to_container(cfg.generation.vllm, resolve=True)
            return tokenizer, VLLMGenerator(model, dtype=cfg.model.dtype, progress=cfg.generation.progress,
                                            chunk_samples=cfg.generation.chunk_samples,
                                            **options, **vllm_options)  # type: ignore[arg-type]
        net = load_causal_lm(model, dtype=cfg.model.dtype, attn_implementation=cfg.model.attn_implementation,
                             **options)
    except OSError as err:  # not a folder, and not loadable from the hub (offline, gated, typo)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"model={model}: could not load it ({first})") from err
    device = cfg.generation.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and cfg.get("cpu_keep_freed_memory"):
        keep_freed_memory()
    net.to(device)
    return tokenizer, HFGenerator(net, tokenizer, batch_size=cfg.generation.batch_size,
                                  progress=cfg.generation.progress)


def _label(cfg: DictConfig, model: str) -> str:
    """A short name for the model: ``model.name``, else the folder (a training export's run folder)."""
    if cfg.model.name:
        return str(cfg.model.name)
    path = Path(model)
    return path.parent.name if path.name == "hf" else path.name


def _loggers(cfg: DictConfig, label: str, config: dict[str, Any]) -> list[Any]:
    loggers = []
    for key, node in (cfg.get("logger") or {}).items():
        if not node:
            continue
        # The train-oriented W&B config names runs after the loss; an eval run is named after its model.
        extra = {"name": f"eval-{label}", "tags": ["eval", label]} if key == "wandb" else {}
        logger = build(node, f"logger.{key}", **extra)
        logger.log_hyperparams(config)
        loggers.append(logger)
    return loggers


def _log_results(loggers: list[Any], results: dict[str, Any], plot: Path | None) -> None:
    from lightning.pytorch.loggers import WandbLogger

    metrics = {f"eval/{name}/{key}": value for name, b in results["benchmarks"].items()
               for key, value in b["metrics"].items()}
    metrics.update({f"eval/{group}_mean/{key}": value for group, m in results["groups"].items()
                    for key, value in m.items()})
    for logger in loggers:
        logger.log_metrics(metrics, step=0)
        if plot is not None and isinstance(logger, WandbLogger):
            logger.log_image(key="eval/pass_at_k", images=[str(plot)], step=0)
        logger.save()
        logger.finalize("success")


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate ``cfg.model`` on ``cfg.benchmarks``; returns the contents of ``results.json``."""
    start = time.perf_counter()
    model = check_eval_config(cfg)
    out = Path(cfg.paths.output_dir)
    config = save_run_config(cfg, out)
    log.info("Model: %s", model)

    specs = {name: benchmark_config(cfg, name) for name in benchmark_names(cfg)}
    benchmarks = {}
    for name, (loader, _) in specs.items():
        try:
            benchmarks[name] = build(loader, f"benchmark {name}")
        except BenchmarkError as err:
            raise ConfigError(f"benchmark {name}: {err}") from err
    store = ResultsStore(out, model, _settings(cfg, model), config, resume=cfg.resume)
    todo = [name for name in benchmarks if name not in store.done]
    skipped = [name for name in benchmarks if name in store.done]
    if skipped:
        log.info("Already in results.json, skipped: %s", ", ".join(skipped))
    loggers = _loggers(cfg, _label(cfg, model), config)

    timing: dict[str, float] = {}
    if todo:
        t0 = time.perf_counter()
        tokenizer, generator = _load(cfg, model)
        timing["model_load_s"] = time.perf_counter() - t0
        with Grader(timeout_s=cfg.grading.timeout_s, num_workers=cfg.grading.num_workers) as grader:
            for name in todo:
                benchmark = benchmarks[name]
                params = sampling_params(cfg, specs[name][1])
                log.info("%s: %d problems x %d samples", name, len(benchmark), params.n)
                run = run_benchmark(benchmark, tokenizer, generator, grader, params,
                                    require_think_close=cfg.grading.require_think_close,
                                    context_overflow=cfg.generation.context_overflow,
                                    partial=store.partial(name))
                store.add(run, specs[name][0])
                samples = len(benchmark) * params.n
                log.info("%s: accuracy %.4f (%d samples in %.1f s, %.1f samples/s; grading %.1f s)",
                         name, run.metrics["accuracy"], samples, run.generation_s,
                         samples / max(run.generation_s, 1e-9), run.grading_s)
    timing["total_s"] = time.perf_counter() - start
    results = store.finish(timing)

    table = results_table(results)
    (out / TABLE).write_text(table + "\n", encoding="utf-8")
    plot = plot_pass_at_k(results, out / PLOT) if cfg.plot else None
    _log_results(loggers, results, plot)
    log.info("Results (%%; length in tokens; entropy in nats at T=1 and at the sampling T):\n%s", table)
    log.info("Run dir: %s", out)
    return results
