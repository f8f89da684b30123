"""Building a :class:`~curio.evaluation.benchmark.Benchmark` from a file or a Hugging Face dataset.

Each loader is a plain function, so a benchmark is one YAML file in ``conf/benchmark/``::

    _target_: curio.evaluation.loaders.load_parquet_benchmark
    path: ${paths.benchmarks_dir}/aime24.parquet
    name: aime24
    group: id
    grader: math

Malformed input fails at load time with a :class:`BenchmarkError` naming the source, the row (or
line) and the field, never halfway through an evaluation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from curio.evaluation.benchmark import Benchmark, Problem
from curio.evaluation.grading import GraderKind
from curio.files import read_records


class BenchmarkError(RuntimeError):
    """A benchmark source that cannot be loaded or read as problems; the message says where."""


def _check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")


def _field(record: Mapping[str, Any], dotted: str, where: str) -> Any:
    """``record["a"]["b"]`` for ``dotted="a.b"``, with an error that names the missing part."""
    value: Any = record
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise BenchmarkError(f"{where}: missing field {dotted!r}")
        value = value[part]
    return value


def _ground_truth(value: Any, field: str, where: str) -> str:
    # Parquet stores a field missing from one row as null, so null reads as missing.
    if value is None:
        raise BenchmarkError(f"{where}: field {field!r} is missing (null)")
    # Numbers are accepted because JSON datasets often store integer answers (AIME) as numbers.
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise BenchmarkError(
            f"{where}: field {field!r} must be a string or a number, got {type(value).__name__}"
        )
    text = str(value).strip()
    if not text:
        raise BenchmarkError(f"{where}: field {field!r} is empty")
    return text


def _messages(value: Any, where: str, field: str = "prompt") -> tuple[dict[str, str], ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise BenchmarkError(f"{where}: field {field!r} must be a list of chat messages")
    messages = []
    for k, message in enumerate(value):
        if not isinstance(message, Mapping):
            raise BenchmarkError(f"{where}: field '{field}[{k}]' must be a message object")
        for key in ("role", "content"):
            if not isinstance(message.get(key), str):
                raise BenchmarkError(f"{where}: field '{field}[{k}].{key}' must be a string")
        messages.append({"role": message["role"], "content": message["content"]})
    if not messages:
        raise BenchmarkError(f"{where}: field {field!r} has no messages")
    return tuple(messages)


def _chat(
    problem: str, system_prompt: str | None, user_template: str
) -> tuple[dict[str, str], ...]:
    # str.replace rather than str.format: templates and LaTeX problems are full of braces.
    user = {"role": "user", "content": user_template.replace("{problem}", problem)}
    if system_prompt is None:
        return (user,)
    return ({"role": "system", "content": system_prompt}, user)


def _problems_from_records(
    records: Iterable[tuple[str, Mapping[str, Any]]],
    source: str,
    problem_field: str,
    answer_field: str,
    system_prompt: str | None,
    user_template: str,
    messages_field: str | None = None,
    drop_final_assistant: bool = False,
) -> tuple[Problem, ...]:
    if "{problem}" not in user_template:
        raise ValueError(f"user_template must contain '{{problem}}', got {user_template!r}")
    problems = []
    for index, (where, record) in enumerate(records):
        if messages_field is not None:
            prompt = _messages(_field(record, messages_field, where), where, messages_field)
            if drop_final_assistant and prompt[-1]["role"] == "assistant":
                prompt = prompt[:-1]
                if not prompt:
                    raise BenchmarkError(f"{where}: field {messages_field!r} holds only an assistant turn")
        else:
            text = _field(record, problem_field, where)
            if not isinstance(text, str) or not text.strip():
                raise BenchmarkError(f"{where}: field {problem_field!r} must be a non-empty string")
            prompt = _chat(text, system_prompt, user_template)
        truth = _ground_truth(_field(record, answer_field, where), answer_field, where)
        problems.append(Problem(prompt, truth, index))
    if not problems:
        raise BenchmarkError(f"{source}: no problems")
    return tuple(problems)


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise BenchmarkError(f"benchmark file not found: {path}")
    return path


def load_parquet_benchmark(
    path: str | Path,
    name: str,
    group: str,
    grader: GraderKind = "math",
    limit: int | None = None,
) -> Benchmark:
    """A benchmark in the verl parquet format the CurioSFT authors use.

    One row per problem: ``prompt`` (chat messages, system prompt included) and
    ``reward_model.ground_truth``; other columns are ignored.

    Args:
        path: the ``.parquet`` file.
        name: benchmark name used in metric keys.
        group: ``"id"`` or ``"ood"``.
        grader: ``"math"``, ``"boxed"`` or ``"choice"``.
        limit: keep only the first ``limit`` problems.
    """
    _check_limit(limit)
    path = _existing(path)
    try:
        table = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 -- pyarrow raises several types for unreadable files
        raise BenchmarkError(f"{path}: not a readable parquet file ({exc})") from exc
    if limit is not None:
        table = table.slice(0, limit)
    problems = []
    for index, row in enumerate(table.to_pylist()):
        where = f"{path}: row {index + 1}"
        prompt = _messages(_field(row, "prompt", where), where)
        field = "reward_model.ground_truth"
        truth = _ground_truth(_field(row, field, where), field, where)
        problems.append(Problem(prompt, truth, index))
    if not problems:
        raise BenchmarkError(f"{path}: no problems")
    return Benchmark(name=name, group=group, grader=grader, problems=tuple(problems))


def load_jsonl_benchmark(
    path: str | Path,
    name: str,
    group: str,
    grader: GraderKind = "math",
    problem_field: str = "problem",
    answer_field: str = "answer",
    system_prompt: str | None = None,
    user_template: str = "{problem}",
    messages_field: str | None = None,
    limit: int | None = None,
    drop_final_assistant: bool = False,
) -> Benchmark:
    """A benchmark from a JSON-lines file, one object per line (blank lines are skipped).

    Args:
        path: the ``.jsonl`` file.
        name, group, grader, limit: as for :func:`load_parquet_benchmark`.
        problem_field: field holding the problem text; dots address nested fields (``a.b``).
        answer_field: field holding the reference answer (string or number).
        system_prompt: optional system message placed before the problem.
        user_template: user message, with ``{problem}`` replaced by the problem text (e.g.
            ``"{problem}\\nPut your final answer in \\\\boxed{}."``).
        messages_field: field holding ready-made chat messages (``[{"role", "content"}, ...]``)
            to use as the prompt as they are; ``problem_field``, ``system_prompt`` and
            ``user_template`` are then unused.
        drop_final_assistant: with ``messages_field``, leave out a final assistant turn (SFT
            demonstrations as RL prompts: the prompt is what precedes the answer).
    """
    _check_limit(limit)
    path = _existing(path)

    def records() -> Iterable[tuple[str, Mapping[str, Any]]]:
        for record in read_records(path)[:limit]:
            if record.problem is not None:
                raise BenchmarkError(f"{record.where}: {record.problem}")
            yield record.where, record.value

    problems = _problems_from_records(
        records(),
        str(path),
        problem_field,
        answer_field,
        system_prompt,
        user_template,
        messages_field,
        drop_final_assistant,
    )
    return Benchmark(name=name, group=group, grader=grader, problems=problems)


def load_hf_benchmark(
    dataset: str,
    name: str,
    group: str,
    grader: GraderKind = "math",
    split: str = "test",
    subset: str | None = None,
    problem_field: str = "problem",
    answer_field: str = "answer",
    system_prompt: str | None = None,
    user_template: str = "{problem}",
    limit: int | None = None,
) -> Benchmark:
    """A benchmark from a Hugging Face dataset: ``datasets.load_dataset(dataset, subset, split)``.

    Args:
        dataset: hub name or local dataset directory, e.g. ``"HuggingFaceH4/MATH-500"``.
        split: the split to evaluate on.
        subset: the dataset configuration, if it has several.
        Other arguments: as for :func:`load_jsonl_benchmark`.
    """
    _check_limit(limit)
    import datasets  # deferred: importing it costs seconds and most runs read local files

    source = (
        f"Hugging Face dataset {dataset!r}"
        + (f" ({subset})" if subset else "")
        + f" split {split!r}"
    )
    try:
        rows = datasets.load_dataset(dataset, subset, split=split)
    except Exception as exc:  # noqa: BLE001 -- offline, missing, gated and bad-split all land here
        raise BenchmarkError(
            f"could not load {source}: {type(exc).__name__}: {exc}. Without network access "
            "(e.g. HF_DATASETS_OFFLINE=1) only datasets already in the local cache load; otherwise "
            "export the set to JSONL or parquet and use load_jsonl_benchmark or "
            "load_parquet_benchmark."
        ) from exc
    if limit is not None:
        rows = rows.select(range(min(limit, len(rows))))
    problems = _problems_from_records(
        ((f"{source}: row {i}", row) for i, row in enumerate(rows)),
        source,
        problem_field,
        answer_field,
        system_prompt,
        user_template,
    )
    return Benchmark(name=name, group=group, grader=grader, problems=problems)
