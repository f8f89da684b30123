"""Per-token diagnostic plots every N optimizer steps: tau against teacher entropy, entropy histograms."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import WandbLogger
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

log = logging.getLogger(__name__)

#: At most this many tokens go into a plot (a fixed-stride subsample): enough to see the shape,
#: and a scatter of 20k points still renders in well under a second.
MAX_POINTS = 20_000


class TokenPlots(Callback):
    """Every ``every_n_steps`` optimizer steps, on rank 0, plots that step's per-token values.

    Reads ``pl_module.train_window.values`` (the per-token ``tau``, ``entropy`` and
    ``teacher_entropy`` of every micro-batch of the current optimizer step) in
    ``on_before_optimizer_step``: Lightning runs callback hooks before the LightningModule's, which
    is where the window is reset, so the callback sees the whole step. It writes

    - ``<default_root_dir>/plots/tau_vs_entropy_step{N:06d}.png``: tau against the teacher's
      entropy, only when the loss produces ``tau`` (``loss=curio``);
    - ``<default_root_dir>/plots/entropy_hist_step{N:06d}.png``: student (and teacher) entropies;

    with ``N`` the 1-indexed optimizer step, and logs both to W&B when a ``WandbLogger`` is
    attached (at the same ``trainer/global_step`` as that step's scalar metrics). Other steps cost
    one integer comparison.

    Args:
        every_n_steps: plot after optimizer steps ``N`` with ``N % every_n_steps == 0``.
        dirname: folder under ``trainer.default_root_dir``.
        max_points: tokens per plot at most (fixed-stride subsample of the step's tokens).
    """

    def __init__(self, every_n_steps: int = 50, dirname: str = "plots", max_points: int = MAX_POINTS):
        if every_n_steps < 1:
            raise ValueError(f"callbacks.token_plots.every_n_steps must be >= 1, got {every_n_steps}")
        if max_points < 1:
            raise ValueError(f"callbacks.token_plots.max_points must be >= 1, got {max_points}")
        self.every_n_steps = every_n_steps
        self.dirname = dirname
        self.max_points = max_points
        #: Paths written so far (for tests and for whoever wants to find them).
        self.written: list[Path] = []

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        step = trainer.global_step + 1  # global_step counts the steps already taken
        if step % self.every_n_steps != 0 or not trainer.is_global_zero:
            return
        window = getattr(pl_module, "train_window", None)
        if window is None:
            return
        values = _subsample({name: torch.cat(chunks) for name, chunks in window.values.items() if chunks},
                            self.max_points)
        if not values:
            return
        out_dir = Path(trainer.default_root_dir) / self.dirname
        out_dir.mkdir(parents=True, exist_ok=True)
        images: dict[str, Path] = {}
        try:
            if "tau" in values and "teacher_entropy" in values:
                path = out_dir / f"tau_vs_entropy_step{step:06d}.png"
                rule = getattr(getattr(pl_module, "loss_fn", None), "temperature", None)
                _save(_tau_figure(values["teacher_entropy"], values["tau"], rule, step), path)
                images["plots/tau_vs_entropy"] = path
            if "entropy" in values or "teacher_entropy" in values:
                path = out_dir / f"entropy_hist_step{step:06d}.png"
                _save(_entropy_figure(values.get("entropy"), values.get("teacher_entropy"), step), path)
                images["plots/entropy_hist"] = path
        except Exception as err:  # a diagnostic must never stop a training run
            log.warning("step %d: token plots failed: %s", step, err)
        self.written.extend(images.values())
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                for key, path in images.items():
                    try:
                        logger.log_image(key=key, images=[str(path)], step=trainer.global_step)
                    except Exception as err:  # a diagnostic must never stop a training run
                        log.warning("W&B: could not log %s: %s", path, err)


def _subsample(values: dict[str, Tensor], max_points: int) -> dict[str, np.ndarray]:
    """The same fixed-stride subsample of every (aligned) per-token vector, as numpy on the CPU.

    ``tau`` and ``teacher_entropy`` come from the same tokens, so one stride keeps them paired.
    The stride is taken on the device, so only ``max_points`` values per metric cross to the CPU.
    """
    out = {}
    for name, vector in values.items():
        if vector.numel() == 0:
            continue
        stride = max(1, -(-vector.numel() // max_points))  # ceil: at most max_points values
        out[name] = vector[::stride].float().cpu().numpy()
    return out


def _tau_figure(teacher_entropy: np.ndarray, tau: np.ndarray, rule: Any, step: int) -> Figure:
    """Scatter of tau (y) against the teacher's full-vocabulary entropy (x), with the rule's bounds.

    The entropy-guided tau is a function of the top-K distribution, not of the full entropy alone,
    so there is no exact curve in these coordinates; the rule's range, gate and pivot are drawn as
    reference lines instead.
    """
    finite = np.isfinite(teacher_entropy) & np.isfinite(tau)
    teacher_entropy, tau = teacher_entropy[finite], tau[finite]
    fig = Figure(figsize=(6, 4.5), dpi=100)
    ax = fig.add_subplot()
    ax.scatter(teacher_entropy, tau, s=3 if len(tau) > 2_000 else 10, alpha=0.3, linewidths=0)
    for name, style in (("tau_min", "--"), ("tau_max", "--"), ("tau", "-")):
        if isinstance(getattr(rule, name, None), (int, float)):
            ax.axhline(getattr(rule, name), color="gray", linestyle=style, linewidth=0.8, label=name)
    for name, style in (("gate_entropy", ":"), ("h_pivot", "-.")):
        if isinstance(getattr(rule, name, None), (int, float)):
            ax.axvline(getattr(rule, name), color="tab:red", linestyle=style, linewidth=0.8, label=name)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel("teacher entropy (nats)")
    ax.set_ylabel("tau")
    ax.set_title(f"tau vs teacher entropy, step {step} ({len(tau)} tokens)")
    fig.tight_layout()
    return fig


def _entropy_figure(student: np.ndarray | None, teacher: np.ndarray | None, step: int) -> Figure:
    """Histogram of the student's (and the teacher's) per-token entropies on shared bins."""
    fig = Figure(figsize=(6, 4.5), dpi=100)
    ax = fig.add_subplot()
    present = [(label, v[np.isfinite(v)]) for label, v in (("student", student), ("teacher", teacher))
               if v is not None]
    lo = min((float(v.min()) for _, v in present if v.size), default=0.0)
    hi = max((float(v.max()) for _, v in present if v.size), default=0.0)
    bins = np.linspace(lo, hi, 61) if hi > lo else 60  # shared bins, so the two are comparable
    for label, v in present:
        ax.hist(v, bins=bins, histtype="stepfilled", alpha=0.45, label=f"{label} (mean {v.mean():.2f})")
    ax.set_yscale("log")  # most tokens sit near 0 nats; the tail is what changes
    ax.set_xlabel("entropy (nats)")
    ax.set_ylabel("tokens")
    ax.set_title(f"per-token entropy, step {step} ({len(present[0][1])} tokens)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _save(fig: Figure, path: Path) -> None:
    """Render with Agg. The figure never enters pyplot's registry, so dropping it frees it."""
    FigureCanvasAgg(fig).print_png(str(path))
    fig.clear()
