"""The claims report: verdicts, tables (mean ± std over seeds) and plots, as Markdown.

Everything in the report is computed here from the study's records (:mod:`curio.claims.records`),
so rerunning the study command, or ``--report-only`` on any checkout, regenerates it. One
hand-written block survives regeneration: the text between :data:`KEEP_START` and
:data:`KEEP_END` in an existing report (the discussion of the results).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, FuncFormatter

from curio.atomic_write import write_text_atomic
from curio.claims.plan import BASE, Preset
from curio.config import ROOT
from curio.claims.verdicts import Answer, Table, answer_all

_TAB20 = colormaps["tab20"]

KEEP_START = "<!-- discussion: hand-written, kept when the report is regenerated -->"
KEEP_END = "<!-- end of discussion -->"

LABELS = {
    BASE: "base model",
    "ce": "SFT (ce)",
    "entropy_small": "entropy bonus, small",
    "entropy_large": "entropy bonus, large",
    "dft": "DFT",
    "curio": "CurioSFT (lagged, entropy-guided)",
    "curio_fixed": "CurioSFT (lagged, fixed tau)",
    "curio_live": "CurioSFT (live, entropy-guided)",
    "gem": "GEM",
    "psft": "PSFT",
    "asft": "ASFT",
    "sft_kl": "SFT + KL",
    "eaft": "EAFT",
    "sed": "SED-SFT",
}


#: What the report says differently per world: the probe label it calls forks, the token labels it
#: plots, and how each experiment was trained.
WORLD_TEXT: dict[str, dict[str, Any]] = {
    "tiny": {
        "fork": ("choice", "choice points"),
        "labels": (("choice", "choice points"), ("result", "determined: results"), ("format", "determined: format")),
        "training": "the embedded default (same data, steps, learning rate, schedule: "
                    "`conf/tuned/tiny_world-tiny_world.yaml`)",
        "kinds": "*Choice points* are the tokens where the world offers several valid next steps; *determined*\n"
                 "tokens are arithmetic results and the copying/format tokens that follow from what came before.",
    },
    "fork": {
        "fork": ("fork", "forks"),
        "labels": (("choice", "forks: step choices"), ("phrase", "forks: wording"), ("result", "determined: results"),
                   ("format", "determined: format")),
        "training": "`model=fork_world data=fork_world` (the SFT stage of `docs/claims_v2_protocol.md`: same data, "
                    "3 epochs, learning rate, schedule: `conf/tuned/fork_world-fork_world.yaml`)",
        "kinds": "*Forks* are the tokens where the world offers several valid continuations: *step choices* (which\n"
                 "operation next) and *wording* forks (connector, equals, separator, line end); *determined*\n"
                 "tokens are arithmetic results and the copying/format tokens that follow from what came before.",
    },
}


_RL_RULE = """ Question 7
compares each seed's gain from GRPO (after minus before). Question 8 ranks the SFT objectives:
Spearman's rho between their seed-mean fork entropy after SFT and ID avg@n after GRPO, *supported*
when rho > 0 with a one-sided permutation p < 0.05, *contradicted* when rho < 0 likewise."""


def label_of(name: str) -> str:
    """A model's name in the report: ``curio+rl`` is CurioSFT's model after the RL stage."""
    if name.endswith("+rl"):
        return f"{LABELS.get(_experiment(name), _experiment(name))} → GRPO"
    return LABELS.get(name, name)


def _stats(values: Sequence[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else float("nan")
    return mean, std


def _cell(values: Sequence[float], scale: float = 1.0, digits: int = 1) -> str:
    mean, std = _stats([scale * v for v in values])
    return f"{mean:.{digits}f}" if math.isnan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _model_rows(table: Table, columns: Sequence[tuple[str, Callable[[Sequence[Mapping[str, float]]], str]]]) -> str:
    rows = [[label_of(name), *(render(seeds) for _, render in columns)] for name, seeds in table.items()]
    return _table(["model", *(title for title, _ in columns)], rows)


def _metric(key: str, scale: float = 1.0, digits: int = 1) -> Callable[[Sequence[Mapping[str, float]]], str]:
    """A column of ``key`` (mean ± std over seeds); empty for models that do not have it."""
    return lambda seeds: _cell([s[key] for s in seeds], scale, digits) if all(key in s for s in seeds) else ""


def _ratio(top: str, bottom: str) -> Callable[[Sequence[Mapping[str, float]]], str]:
    return lambda seeds: _cell([s[top] / s[bottom] for s in seeds], 1.0, 2)


def _pass_ks(table: Table, prefix: str) -> list[int]:
    first = next(iter(table.values()))[0]
    return sorted(int(key.split("@")[1]) for key in first if key.startswith(f"{prefix}/pass@"))


def _plain_numbers(axis: Any) -> None:
    """Label a log-scaled axis in plain numbers (0.06, 0.1), minor ticks too, as many of them as fit:
    every one on a range under half a decade (where they are most of the labels), 2, 3 and 5 up to
    1.2 decades, 2 and 5 up to 2, none beyond (labels 0.9 and 1 would overlap)."""
    def minor(value: float, _position: int) -> str:
        low, high = axis.get_view_interval()
        decades = math.log10(high / low) if low > 0 else math.inf
        digit = round(value / 10 ** math.floor(math.log10(value) + 1e-9))
        shown = range(1, 10) if decades < 0.5 else (2, 3, 5) if decades < 1.2 else (2, 5) if decades < 2 else ()
        return f"{value:g}" if digit in shown else ""

    axis.set_major_formatter(FormatStrFormatter("%g"))
    axis.set_minor_formatter(FuncFormatter(minor))


def _save(fig: Figure, path: Path) -> None:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig).print_png(str(path))


#: The models the claims turn on, drawn thicker (with their ± std band) in crowded plots.
MAIN = ("ce", "curio")


def _experiment(name: str) -> str:
    return name.removesuffix("+rl")


def _stages(names: Sequence[str]) -> list[list[str]]:
    """The models after SFT (and the base), then, when there was an RL stage, the base and the
    models after GRPO: the rows of the plots."""
    stages = [[name for name in names if not name.endswith("+rl")]]
    if any(name.endswith("+rl") for name in names):
        stages.append([name for name in names if name == BASE or name.endswith("+rl")])
    return stages


def _stage_title(row: int, stages: Sequence[Sequence[str]]) -> str:
    """What a plot's title adds for row ``row`` of :func:`_stages`: nothing without an RL stage."""
    return "" if len(stages) == 1 else (", after SFT" if row == 0 else ", after GRPO")


def _colours(names: Sequence[str]) -> dict[str, str | tuple]:
    """A colour per experiment (a model and its ``+rl`` share it) for the models ``names``; with more
    than 10, :data:`MAIN` keep the two strongest and the rest come from tab20 past them."""
    experiments = list(dict.fromkeys(_experiment(name) for name in names if name != BASE))
    if len(experiments) <= 10:
        return {name: f"C{i}" for i, name in enumerate(experiments)}
    others = [name for name in experiments if name not in MAIN]
    return {**{name: _TAB20(4 + i % 16) for i, name in enumerate(others)},
            **{name: f"C{i}" for i, name in enumerate(MAIN)}}


def plot_pass_at_k(table: Table, path: Path) -> None:
    """pass@k against k, ID and OOD panels; mean over seeds with a ± std band; base dashed. With an
    RL stage, a second row of panels for the models after GRPO (base repeated). Each experiment keeps
    its colour in both rows; with more than 8 models in a panel only :data:`MAIN` get a band."""
    stages = _stages(table)
    colours = _colours(table)
    fig = Figure(figsize=(12, 4.8 * len(stages)), dpi=100)
    for row, names in enumerate(stages):
        crowded = len(names) > 8
        for column, prefix in enumerate(("id", "ood")):
            ax = fig.add_subplot(len(stages), 2, 2 * row + column + 1)
            ks = _pass_ks(table, prefix)
            for name in names:
                seeds = table[name]
                stats = [_stats([100 * s[f"{prefix}/pass@{k}"] for s in seeds]) for k in ks]
                means = [m for m, _ in stats]
                main = _experiment(name) in MAIN or not crowded
                if name == BASE:
                    style = {"linestyle": "--", "color": "black", "linewidth": 1.5}
                else:
                    style = {"color": colours[_experiment(name)], "linewidth": 2.0 if main else 0.9,
                             "alpha": 1.0 if main else 0.75}
                ax.plot(ks, means, marker="o", markersize=3 if main else 2, label=label_of(name), **style)
                if len(seeds) > 1 and main and name != BASE:
                    ax.fill_between(ks, [m - s for m, s in stats], [m + s for m, s in stats], alpha=0.15,
                                    color=style["color"])
            ax.set_xscale("log", base=2)
            ax.set_xlabel("k (samples)")
            ax.set_ylabel("pass@k (%)")
            ax.set_title(f"{prefix.upper()} test set{_stage_title(row, stages)}")
            ax.grid(alpha=0.3)
            if column == 0:
                ax.legend(fontsize=6 if crowded else 7, loc="lower right", ncol=2 if crowded else 1)
    _save(fig, path)


def plot_entropy(table: Table, path: Path, labels: Sequence[tuple[str, str]]) -> None:
    """Teacher-forced entropy by token label, one group of bars per model (± std over seeds); with an
    RL stage, a second row for the models after GRPO (base repeated)."""
    stages = _stages(list(table))
    widest = max(len(names) for names in stages)
    fig = Figure(figsize=(max(12.0, 0.85 * widest), 4.5 * len(stages)), dpi=100)
    width = 0.8 / len(labels)
    for row, names in enumerate(stages):
        ax = fig.add_subplot(len(stages), 1, row + 1)
        for index, (label, title) in enumerate(labels):
            stats = [_stats([s[f"H/{label}"] for s in table[name]]) for name in names]
            xs = [i + (index - (len(labels) - 1) / 2) * width for i in range(len(names))]
            errors = [0.0 if math.isnan(s) else s for _, s in stats]
            ax.bar(xs, [m for m, _ in stats], width, yerr=errors, capsize=2, label=title, color=f"C{index}")
        ax.set_xticks(range(len(names)), [label_of(n) for n in names], rotation=20, ha="right", fontsize=8)
        ax.set_xlim(-0.6, widest - 0.4)
        ax.set_ylabel("entropy (nats, T = 1)")
        ax.set_title(f"Teacher-forced token entropy on held-out demonstrations{_stage_title(row, stages)}")
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=8)
    _save(fig, path)


def plot_tau(histograms: Mapping[str, Mapping[str, Any]], path: Path, fork: tuple[str, str]) -> None:
    """Entropy-guided tau histograms, forks (``fork``: label, title) against determined tokens, one
    panel per model."""
    fig = Figure(figsize=(4 * len(histograms), 3.6), dpi=100)
    for index, (name, hist) in enumerate(histograms.items()):
        ax = fig.add_subplot(1, len(histograms), index + 1)
        low, high = hist["range"]
        bins = len(hist["choice"])
        edges = [low + (high - low) * i / bins for i in range(bins)]
        for label, title in (fork, ("determined", "determined")):
            counts = hist[label]
            total = sum(counts) or 1.0
            ax.bar(edges, [c / total for c in counts], width=(high - low) / bins, align="edge", alpha=0.55,
                   label=title)
        ax.set_title(label_of(name), fontsize=9)
        ax.set_xlabel("tau")
        ax.set_ylabel("share of tokens")
        ax.legend(fontsize=7)
    _save(fig, path)


#: Rollout steps in the moving average of the RL curves (the per-step reward is one rollout's 128
#: samples, so it is noisy).
RL_SMOOTHING = 10


def rl_mean_curve(runs: Sequence[Sequence[Sequence[float]]], window: int = RL_SMOOTHING) -> list[tuple[int, float]]:
    """One metric through the RL runs ``runs`` (one experiment, every seed; each run's
    ``(step, value)`` at its rollout steps): the mean over the runs at each rollout step they all
    logged, then a trailing moving average over ``window`` of those steps."""
    curves = [{int(step): value for step, value in run} for run in runs]
    steps = sorted(set.intersection(*(set(curve) for curve in curves))) if curves else []
    means = [sum(curve[step] for curve in curves) / len(curves) for step in steps]
    windows = [means[max(0, i + 1 - window): i + 1] for i in range(len(means))]
    return [(step, sum(w) / len(w)) for step, w in zip(steps, windows)]


def plot_rl_curves(runs: Mapping[str, Sequence[Mapping[str, Any]]], path: Path) -> None:
    """Through the RL stage: the reward and the mean next-token entropy of each run's own samples,
    per model (``runs``: the records of its RL runs at every seed), by :func:`rl_mean_curve`;
    :data:`MAIN` thicker, each experiment in its colour of the pass@k plot."""
    colours = _colours(list(runs))
    fig = Figure(figsize=(12, 4.6), dpi=100)
    for index, (metric, title) in enumerate((("reward_mean", "reward (share correct)"),
                                             ("rollout_entropy", "entropy of its own samples (nats, log scale)"))):
        ax = fig.add_subplot(1, 2, index + 1)
        for name, records in runs.items():
            curve = rl_mean_curve([record["rl_curves"][metric] for record in records])
            main = _experiment(name) in MAIN
            ax.plot([step for step, _ in curve], [value for _, value in curve], label=label_of(name),
                    color=colours[_experiment(name)], linewidth=2.0 if main else 0.9, alpha=1.0 if main else 0.7)
        ax.set_xlabel("optimizer step of the RL stage")
        ax.set_title(f"{title}\nmean over seeds, moving average of {RL_SMOOTHING} rollout steps", fontsize=10)
        ax.grid(alpha=0.3)
        if index == 0:
            ax.legend(fontsize=6, ncol=2)
        else:  # an entropy bonus's runs sit some 20x above the rest: a linear axis flattens the rest
            ax.set_yscale("log")
            _plain_numbers(ax.yaxis)
    _save(fig, path)


def plot_entropy_vs_rl(table: Table, fork_metric: str, fork_title: str, path: Path) -> None:
    """Question 8's points: each objective's fork entropy after SFT against its ID avg@n after GRPO
    (seed means, ± std bars), for the objectives finished at both stages. Named in a legend, each
    with its colour and its own marker: most objectives sit close together, where labels beside the
    points would overlap."""
    names = [name for name in table if name != BASE and not name.endswith("+rl") and f"{name}+rl" in table]
    colours = _colours(list(table))
    fig = Figure(figsize=(9.5, 5.5), dpi=100)
    ax = fig.add_subplot()
    for name, marker in zip(names, itertools.cycle("osD^vP*X<>hp8")):
        (x, dx), (y, dy) = (_stats([s[fork_metric] for s in table[name]]),
                            _stats([100 * s["id/avg"] for s in table[f"{name}+rl"]]))
        ax.errorbar([x], [y], xerr=[0.0 if math.isnan(dx) else dx], yerr=[0.0 if math.isnan(dy) else dy],
                    marker=marker, markersize=7, color=colours[name], capsize=2, linestyle="none",
                    label=label_of(name))
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    ax.set_xscale("log")  # the objectives' entropies span over an order of magnitude; rho reads only ranks
    _plain_numbers(ax.xaxis)
    ax.set_xlabel(f"entropy at {fork_title} after SFT (nats, T = 1, log scale)")
    ax.set_ylabel("ID avg@n after GRPO (%)")
    ax.set_title("Question 8: entropy before RL against accuracy after it", fontsize=10)
    ax.grid(alpha=0.3)
    _save(fig, path)


def _answers_section(answers: Sequence[Answer], world: str) -> str:
    rows = []
    for answer in answers:
        evidence = [f"{p.what}: {_signed(p)} (per seed {', '.join(_fmt(p.metric, d) for d in p.diffs)})"
                    for p in answer.parts]
        if answer.note:  # question 8's whole evidence (a rank correlation has no paired parts)
            evidence.append(answer.note)
        rows.append([str(answer.number), answer.question, f"**{answer.verdict}**", "; ".join(evidence)])
    return _table(["#", "claim", world, "evidence: mean ± std over seeds of the paired difference"], rows)


def _fmt(metric: str, value: float) -> str:
    return f"{100 * value:+.1f} pt" if "pass@" in metric or metric.endswith("/avg") else f"{value:+.3f}"


def _signed(part: Any) -> str:
    mean = _fmt(part.metric, part.mean)
    if math.isnan(part.std):
        return mean
    return f"{mean} ± {_fmt(part.metric, part.std).lstrip('+')}"


def _kept(existing: Path) -> str:
    if existing.is_file():
        text = existing.read_text(encoding="utf-8")
        found = re.search(re.escape(KEEP_START) + r"(.*?)" + re.escape(KEEP_END), text, re.DOTALL)
        if found:
            return found.group(1).strip("\n")
    return "_No discussion yet._"


def retrained_differently(records: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[str]:
    """The RL runs whose SFT model was trained again (on another machine than the SFT record's) and
    came out with other weights than the evaluated one."""
    evaluated = {record["model"]: record.get("weights_sha256") for seeds in records.values() for record in seeds}
    return [record["model"] for seeds in records.values() for record in seeds
            if "sft_weights_sha256" in record
            and record["sft_weights_sha256"] != evaluated.get(record["model"].replace("+rl/", "/"))]


def write_report(
    preset: Preset, records: Mapping[str, Sequence[Mapping[str, Any]]], path: Path,
    command: str, provenance: Mapping[str, str],
) -> list[Answer]:
    """Write the Markdown report to ``path`` and its plots to ``<path stem>/`` from ``records`` (each
    model's records, in seed order); returns the answers."""
    table: Table = {name: [record["measures"] for record in seeds] for name, seeds in records.items()}
    k_max = preset.samples
    world = preset.world
    text_of = WORLD_TEXT[world.name]
    fork, fork_title = text_of["fork"]
    answers = answer_all(table, k_max, world.fork_metric, preset.rl, preset.experiments)
    figures = path.parent / path.stem
    plot_pass_at_k(table, figures / "pass_at_k.png")
    plot_entropy(table, figures / "entropy_by_label.png", text_of["labels"])
    shown = [name for name in (BASE, "ce", "curio", "curio_live") if name in table]
    plot_tau({name: records[name][0]["tau_histograms"] for name in shown},
             figures / "tau_by_label.png", (fork, fork_title))
    rel = figures.name
    rl_section = ""
    if preset.rl:
        plot_rl_curves({name: seeds for name, seeds in records.items() if name.endswith("+rl")},
                       figures / "rl_curves.png")
        rl_rows = _model_rows({name: seeds for name, seeds in table.items() if name.endswith("+rl")}, [
            ("reward, first steps", _metric("rl/reward_mean_start", 100)),
            ("reward, last steps", _metric("rl/reward_mean_end", 100)),
            ("sample entropy, first steps", _metric("rl/rollout_entropy_start", digits=3)),
            ("sample entropy, last steps", _metric("rl/rollout_entropy_end", digits=3)),
        ])
        plot_entropy_vs_rl(table, world.fork_metric, fork_title, figures / "entropy_vs_rl.png")
        rl_section = f"""
## Through the RL stage

Every SFT model then runs the same GRPO stage (`rl.py prompts={world.prompts}`, its settings in
`conf/tuned/rl-export-{world.prompts}.yaml`{", and here " + " ".join(f"`{o}`" for o in preset.rl_overrides) if preset.rl_overrides else ""}); "→ GRPO" rows
above are those models. Reward (% of the rollout's samples correct) and the mean next-token entropy
of the run's own samples, averaged over its first and its last 10 rollout steps:

{rl_rows}

![through RL]({rel}/rl_curves.png)

Question 8's points (its verdict above ranks them by Spearman's rho):

![entropy before RL against accuracy after it]({rel}/entropy_vs_rl.png)
"""
    keys = [key for name in preset.experiments for key in ((name, f"{name}+rl") if preset.rl else (name,))]
    absent = [key for key in keys if key not in table]
    unfinished = (f"\n**Unfinished study:** not yet run at every seed, so left out: {', '.join(absent)}.\n"
                  if absent else "")
    differing = retrained_differently(records)
    if differing:
        unfinished += (f"\n**Retrained SFT models:** these RL runs started from an SFT model trained again on "
                       f"another machine whose weights differ from the evaluated one: {', '.join(differing)}.\n")
    seeds = ", ".join(str(s) for s in preset.seeds)
    mid = min(8, k_max)
    ks = sorted({mid, k_max})  # one column when the samples are 8 or fewer
    accuracy = _model_rows(table, [
        ("ID avg@n", _metric("id/avg", 100)), *((f"ID pass@{k}", _metric(f"id/pass@{k}", 100)) for k in ks),
        ("ID maj@n", _metric("id/maj", 100)), ("OOD avg@n", _metric("ood/avg", 100)),
        *((f"OOD pass@{k}", _metric(f"ood/pass@{k}", 100)) for k in ks),
    ])
    noise = ""
    if any("id/avg_eval_se" in seed for seeds in table.values() for seed in seeds):
        noise_rows = _model_rows(table, [
            ("ID avg@n", _metric("id/avg_eval_se", 100, 2)), (f"ID pass@{k_max}", _metric("id/pass_n_eval_se", 100, 2)),
            ("OOD avg@n", _metric("ood/avg_eval_se", 100, 2)), (f"OOD pass@{k_max}", _metric("ood/pass_n_eval_se", 100, 2)),
        ])
        noise = f"""
**The evaluation's own noise.** Each model is sampled once. The standard error that this sampling
alone puts on its numbers (the same weights sampled again), in points, from each problem's share of
correct samples (`evaluation_se` in `curio/claims/measures.py`; for pass@{k_max} a plug-in estimate, read
as an order of magnitude: a problem no sample solved adds nothing to it, so it is low where many
problems are solved very rarely, and it can be high for problems solved a little more often):

{noise_rows}

A seed's difference between two models carries the noise of both evaluations: a standard error of
about √2 × these where the two are alike, so ±2.8 × these is its 95% interval. The spread over seeds
that the rule uses includes it.
"""
    unboxed = ""
    if any("id/unboxed_correct" in seed for seeds in table.values() for seed in seeds):
        unboxed_rows = _model_rows(table, [
            ("ID", _metric("id/unboxed_correct", 100, 2)), ("OOD", _metric("ood/unboxed_correct", 100, 2))])
        unboxed = f"""
**Correct without a boxed answer** (% of samples; protocol amendment A11). The evaluations' `math`
grader lets math-verify judge the last expression of a response that boxes no answer, and where
every intermediate expression equals the answer such a response may have stopped solving anywhere.
Empty for models with a record made before this measurement whose samples were no longer there to read:

{unboxed_rows}
"""
    entropy = _model_rows(table, [
        *((title, _metric(f"H/{label}", digits=3)) for label, title in text_of["labels"]),
        *([(fork_title, _metric(f"H/{fork}", digits=3))] if fork != "choice" else []),
        ("determined (all)", _metric("H/determined", digits=3)),
        (f"{fork_title} / determined", _ratio(f"H/{fork}", "H/determined")),
    ])
    diversity = _model_rows(table, [
        ("ID gen. entropy", _metric("id/gen_entropy", digits=3)), ("OOD gen. entropy", _metric("ood/gen_entropy", digits=3)),
        ("ID distinct answers", _metric("id/distinct_answers", digits=2)),
        ("ID distinct correct solutions", _metric("id/distinct_correct", digits=2)),
        ("OOD distinct answers", _metric("ood/distinct_answers", digits=2)),
        ("OOD distinct correct solutions", _metric("ood/distinct_correct", digits=2)),
    ])
    tau = _model_rows(table, [
        (f"mean tau, {fork_title}", _metric(f"tau/{fork}", digits=3)),
        ("mean tau, determined", _metric("tau/determined", digits=3)),
        (f"at tau_max, {fork_title}", _metric(f"tau_at_max/{fork}", 100)),
        ("at tau_max, determined", _metric("tau_at_max/determined", 100)),
        (f"at tau_min, {fork_title}", _metric(f"tau_at_min/{fork}", 100)),
        ("at tau_min, determined", _metric("tau_at_min/determined", 100)),
        (f"gated, {fork_title}", _metric(f"tau_gated/{fork}", 100)),
        ("gated, determined", _metric("tau_gated/determined", 100)),
    ])
    # SFT runs only: an RL run's train/entropy is GRPO's (the RL section above has its own numbers).
    sft_runs = {name: seeds for name, seeds in table.items() if name != BASE and not name.endswith("+rl")}
    training = _model_rows(sft_runs, [
        ("held-out CE at the end", _metric("train/val_ce", digits=4)),
        ("student entropy", _metric("train/entropy", digits=3)),
        ("teacher entropy", _metric("train/teacher_entropy", digits=3)),
        ("mean tau", _metric("train/tau", digits=3)), ("tau p90", _metric("train/tau_p90", digits=3)),
        ("gated (%)", _metric("train/tau_gated", 100)), ("gradient weight w", _metric("train/w", digits=3)),
    ])
    text = f"""# The paper's claims on {world.title}

Generated by `{command}` (preset `{preset.name}`) from its records (`{rel}/records/`): runs at commit `{provenance['commit']}`, this report
written at commit `{provenance['report_commit']}`, on {provenance['machine']}; the study took
{provenance['wall']}. Every number and plot below comes from that command; only the discussion block
at the end is written by hand.
{unfinished}
**Setup.** The shipped base model (`{world.base_model.relative_to(ROOT)}`) is fine-tuned once per experiment in
`conf/experiment/claims/` and seed ({seeds}): each is {text_of['training']} with one loss. Every model answers the first {preset.limit} problems of the ID
and OOD test sets {k_max} times (T = 0.6, the spec's protocol), seeded with its training seed; the base
model is sampled once (seed {preset.seeds[0]}). Teacher-forced probes use the first {preset.probe_rows}
held-out demonstrations (`sft_val.jsonl`), split by the generator's token labels. Numbers are
mean ± std over seeds (the base model has no spread). Nothing was tuned on the test sets: the
entropy-bonus strengths and every hyperparameter were fixed before the first run.

**Rule.** For each claim, the number in question is compared seed by seed (paired): a claim is
*supported* when every seed's difference has the claimed sign and the mean difference exceeds twice
its standard error, *contradicted* when every seed's difference has the opposite sign by the same
margin, *inconclusive* otherwise (always so with one seed). A claim of several parts is supported
when all parts are and contradicted when any part is (`curio/claims/verdicts.py`).{_RL_RULE if preset.rl else ""}

## Verdicts

{_answers_section(answers, world.title.removeprefix("the "))}

## Accuracy (%)

avg@n is the mean correctness over all {k_max} samples (equal to the unbiased pass@1).

{accuracy}
{noise}{unboxed}
![pass@k]({rel}/pass_at_k.png)

## Token entropy on held-out demonstrations (nats, full vocabulary, T = 1)

{text_of['kinds']}

{entropy}

![entropy by label]({rel}/entropy_by_label.png)

## Diversity of generations (ID and OOD test sets, T = 0.6)

Generation entropy: mean next-token entropy (T = 1) along the model's own samples. Distinct answers:
different final answers per problem among the {k_max} samples. Distinct correct solutions: different
correct solution texts per problem (the world's valid orders of work).

{diversity}

## The entropy-guided temperature by token label

The tau that `temp=entropy_guided` (authors' constants) picks when each model's next-token
distribution is the teacher's: for the base model, the tau of CurioSFT's first steps; for a trained
model, the tau its lagged teacher would pick at the end. Shares of tokens in %: "at tau_max" and "at
tau_min" clamped there by the rule, "gated" set to tau_min by its entropy gate.

{tau}

![tau by label]({rel}/tau_by_label.png)
{rl_section}
## During training

Means over the logged optimizer steps of the token means the trainer logs (`csv/metrics.csv` of each
run): the student's entropy, and for CurioSFT the teacher's entropy, tau (mean, 90th percentile, share
gated to tau_min) and the gradient weight w = 1 - lam (log p - log q) that scales each token's CE
gradient. Held-out CE: `val/ce` on `sft_val` at the end of training.

{training}

## Discussion

{KEEP_START}
{_kept(path)}
{KEEP_END}
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)
    return answers
