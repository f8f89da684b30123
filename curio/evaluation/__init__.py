"""Model-independent evaluation: benchmarks, answer grading and metrics (spec section 9)."""

from curio.evaluation.answers import extract_choice, last_boxed, normalize_answer
from curio.evaluation.benchmark import GROUPS, Benchmark, Problem
from curio.evaluation.grading import GRADER_KINDS, Grade, Grader, GraderKind, grade_choice
from curio.evaluation.loaders import (
    BenchmarkError,
    load_hf_benchmark,
    load_jsonl_benchmark,
    load_parquet_benchmark,
)
from curio.evaluation.metrics import (
    benchmark_metrics,
    distinct_n,
    group_means,
    majority_at_k,
    pass_at_k,
    pass_k_values,
)
from curio.evaluation.timeout_pool import Outcome, TimeoutPool

__all__ = [
    "GRADER_KINDS",
    "GROUPS",
    "Benchmark",
    "BenchmarkError",
    "Grade",
    "Grader",
    "GraderKind",
    "Outcome",
    "Problem",
    "TimeoutPool",
    "benchmark_metrics",
    "distinct_n",
    "extract_choice",
    "grade_choice",
    "group_means",
    "last_boxed",
    "load_hf_benchmark",
    "load_jsonl_benchmark",
    "load_parquet_benchmark",
    "majority_at_k",
    "normalize_answer",
    "pass_at_k",
    "pass_k_values",
]
