"""Human-readable views of ``results.json``: a Markdown table and a pass@k-vs-k plot."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

_PASS_K = re.compile(r"^pass@(\d+)$")


def _ks(metrics: dict[str, float]) -> list[int]:
    return sorted(int(m.group(1)) for key in metrics if (m := _PASS_K.match(key)))


def _percent(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}"


def results_table(results: dict[str, Any]) -> str:
    """One row per benchmark, then one per group mean: accuracy (avg@n), pass@k, maj@n (all in
    %), mean length (tokens), truncated share (%) and token entropies (nats, T = 1 / sampling)."""
    benchmarks: dict[str, Any] = results["benchmarks"]
    rows = [(name, b["group"], b["n"], b["problems"], b["metrics"]) for name, b in benchmarks.items()]
    rows += [(f"mean ({group})", group, "", "", metrics) for group, metrics in results["groups"].items()]
    ks = sorted({k for *_, metrics in rows for k in _ks(metrics)})
    header = ["benchmark", "group", "n", "problems", "accuracy", *(f"pass@{k}" for k in ks), "maj@n",
              "length", "truncated", "entropy", "entropy@T"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, group, n, problems, metrics in rows:
        majs = {int(key[4:]): v for key, v in metrics.items() if key.startswith("maj@")}
        maj = majs[max(majs)] if majs else None  # maj@n: the vote over every sample
        cells = [
            name, group, str(n), str(problems), _percent(metrics.get("accuracy")),
            *(_percent(metrics.get(f"pass@{k}")) for k in ks),
            _percent(maj),
            f"{metrics['mean_length']:.0f}" if "mean_length" in metrics else "",
            _percent(metrics.get("truncated_share")),
            f"{metrics['token_entropy']:.3f}" if "token_entropy" in metrics else "",
            f"{metrics['token_entropy_sampling']:.3f}" if "token_entropy_sampling" in metrics else "",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_pass_at_k(results: dict[str, Any], path: Path) -> Path:
    """pass@k against k (log scale) for every benchmark, group means dashed; saved as a PNG."""
    fig = Figure(figsize=(7, 4.5), dpi=100)
    ax = fig.add_subplot()
    curves = [(name, b["metrics"], "-") for name, b in results["benchmarks"].items()]
    curves += [(f"mean ({group})", m, "--") for group, m in results["groups"].items()]
    for label, metrics, style in curves:
        ks = _ks(metrics)
        if ks:
            ax.plot(ks, [100 * metrics[f"pass@{k}"] for k in ks], style, marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k (samples)")
    ax.set_ylabel("pass@k (%)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"pass@k: {Path(str(results['model'])).name or results['model']}")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    # Agg directly: the figure never enters pyplot's registry, so dropping it frees it.
    FigureCanvasAgg(fig).print_png(str(path))
    return path
