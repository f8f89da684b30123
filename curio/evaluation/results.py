"""An evaluation run's outputs on disk: ``results.json`` and ``samples.jsonl``, written as it goes.

After each benchmark its samples are appended to ``samples.jsonl`` and ``results.json`` is
rewritten (atomically) with every finished benchmark and the group means. While a benchmark is
sampled, its finished batches go to ``partial/<benchmark>.jsonl``
(:class:`~curio.evaluation.partial.PartialSamples`), so an interrupted run loses at most a batch.
A resumed run keeps the finished benchmarks, takes up an unfinished one from its finished
batches, and refuses to mix results made with different settings.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from curio.atomic_write import write_json_atomic, write_text_atomic
from curio.errors import ConfigError
from curio.evaluation.metrics import group_means
from curio.evaluation.partial import PartialSamples
from curio.evaluation.sampled import BenchmarkRun

log = logging.getLogger(__name__)

RESULTS = "results.json"
SAMPLES = "samples.jsonl"
#: One row per problem: the rendered prompt its samples in samples.jsonl answered.
PROMPTS = "prompts.jsonl"
#: The finished batches of the benchmarks being sampled.
PARTIAL = "partial"


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(data, Mapping):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class ResultsStore:
    """``results.json`` and ``samples.jsonl`` in ``run_dir``.

    Args:
        run_dir: the run's folder.
        model: the evaluated model (path or hub id).
        settings: everything the numbers depend on besides the benchmarks (model loading,
            sampling, seed, limit, grading); a resumed run must have the same.
        config: the resolved run config, stored for the record.
        resume: keep the benchmarks already in ``run_dir/results.json`` and the finished batches
            of the others; otherwise start afresh.
    """

    def __init__(
        self,
        run_dir: Path,
        model: str,
        settings: dict[str, Any],
        config: dict[str, Any],
        resume: bool = False,
    ):
        self.run_dir = Path(run_dir)
        self.results_path = self.run_dir / RESULTS
        self.samples_path = self.run_dir / SAMPLES
        self.prompts_path = self.run_dir / PROMPTS
        self.run_dir.mkdir(parents=True, exist_ok=True)
        previous = self._previous(settings) if resume else None
        self.data: dict[str, Any] = {
            "model": model,
            "started": previous["started"] if previous else _now(),
            "finished": None,
            "settings": settings,
            "config": config,
            "benchmarks": previous["benchmarks"] if previous else {},
            "groups": {},
            "timing": {},
        }
        self._keep_samples_of(set(self.data["benchmarks"]))
        if not resume:
            shutil.rmtree(self.run_dir / PARTIAL, ignore_errors=True)
        for name in self.done:  # a kill between add()'s write and its discard left them
            self.partial(name).discard()
        self._write()

    def _previous(self, settings: dict[str, Any]) -> dict[str, Any] | None:
        if not self.results_path.is_file():
            log.info("resume: no %s yet, starting afresh", self.results_path)
            return None
        try:
            previous = json.loads(self.results_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ConfigError(f"resume=true: {self.results_path} is not valid JSON ({err})") from err
        old, new = _flatten(previous.get("settings", {})), _flatten(settings)
        differing = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        if differing:
            key = differing[0]
            raise ConfigError(
                f"resume=true: {self.results_path} was made with {key}={old.get(key)!r}, this run "
                f"has {key}={new.get(key)!r} ({len(differing)} setting(s) differ); use the same "
                "settings, or another hydra.run.dir"
            )
        log.info("resume: %d benchmark(s) already done: %s", len(previous["benchmarks"]),
                 ", ".join(previous["benchmarks"]) or "none")
        return previous

    def _keep_samples_of(self, benchmarks: set[str]) -> None:
        # Samples (and prompts) of a benchmark that never reached results.json are dropped: it runs again.
        for path in (self.samples_path, self.prompts_path):
            kept = []
            if benchmarks and path.is_file():
                with path.open(encoding="utf-8") as lines:
                    kept = [line for line in lines if json.loads(line)["benchmark"] in benchmarks]
            write_text_atomic(path, "".join(kept))

    @property
    def done(self) -> set[str]:
        """Names of the benchmarks with results."""
        return set(self.data["benchmarks"])

    def partial(self, benchmark: str) -> PartialSamples:
        """Where ``benchmark``'s finished batches are kept until :meth:`add` records it."""
        return PartialSamples(self.run_dir / PARTIAL / f"{benchmark}.jsonl")

    def add(self, run: BenchmarkRun, config: dict[str, Any]) -> None:
        """Record a finished benchmark (``config``: its resolved loader config): samples, then results."""
        with self.prompts_path.open("a", encoding="utf-8") as out:
            for record in run.prompt_records():
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        with self.samples_path.open("a", encoding="utf-8") as out:
            for record in run.records():
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        n_samples = len(run.benchmark) * run.params.n
        tokens = sum(s.num_tokens for per_problem in run.samples for s in per_problem)
        self.data["benchmarks"][run.benchmark.name] = {
            "group": run.benchmark.group,
            "grader": run.benchmark.grader,
            "problems": len(run.benchmark),
            "n": run.params.n,
            "sampling": {
                "temperature": run.params.temperature,
                "top_p": run.params.top_p,
                "top_k": run.params.top_k,
                "max_new_tokens": run.params.max_new_tokens,
            },
            "metrics": run.metrics,
            "timing": {
                "generation_s": run.generation_s,
                "grading_s": run.grading_s,
                "samples_per_s": n_samples / run.generation_s if run.generation_s > 0 else None,
                "tokens_per_s": tokens / run.generation_s if run.generation_s > 0 else None,
            },
            "grading_errors": run.grading_errors(),
            "config": config,
        }
        self._write()
        self.partial(run.benchmark.name).discard()

    def finish(self, timing: dict[str, float]) -> dict[str, Any]:
        """Mark the run complete with its overall timings; returns the results."""
        self.data["finished"] = _now()
        self.data["timing"] = timing
        self._write()
        return self.data

    def _write(self) -> None:
        benchmarks = self.data["benchmarks"]
        self.data["groups"] = group_means(
            {name: b["metrics"] for name, b in benchmarks.items()},
            {name: b["group"] for name, b in benchmarks.items()},
        )
        write_json_atomic(self.results_path, self.data)
