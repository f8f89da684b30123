"""Teacher-forced probes on held-out demonstrations, split by token label.

For every response token of the ``sft_val`` demonstrations (labels from the generator: ``choice``,
``phrase`` (fork world only), ``result``, ``format``; ``determined`` = result + format, ``fork`` =
choice + phrase):

- the model's next-token entropy (nats, full vocabulary, T = 1);
- the temperature the entropy-guided rule (``conf/temp/entropy_guided.yaml``, the authors' constants)
  picks when this model's distribution is the teacher's. For the base model this is the tau of the
  first CurioSFT steps; for a trained model, the tau its lagged teacher would use at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from curio.config import CONF_DIR
from curio.ops import entropy
from curio.tinyworld.entropy_probe import response_logits

LABELS = ("choice", "phrase", "result", "format")
#: tau histogram bins over the rule's range [tau_min, tau_max].
TAU_BINS = 40


def entropy_guided_rule() -> Any:
    """The entropy-guided rule with the shipped defaults (the same YAML the trainer uses)."""
    return instantiate(OmegaConf.load(CONF_DIR / "temp" / "entropy_guided.yaml"))


def _summary(values: torch.Tensor) -> dict[str, float]:
    if values.numel() == 0:
        return {"mean": float("nan"), "p10": float("nan"), "p50": float("nan"), "p90": float("nan")}
    q = torch.quantile(values.double(), torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64))
    return {"mean": float(values.double().mean()), "p10": float(q[0]), "p50": float(q[1]), "p90": float(q[2])}


def _share(flags: torch.Tensor) -> float:
    return float(flags.double().mean()) if flags.numel() else float("nan")


@torch.no_grad()
def probe(model: Any, tokenizer: Any, rows: Sequence[dict[str, Any]], batch_size: int = 32) -> dict[str, Any]:
    """Entropy and entropy-guided tau by label: means, quantiles, tau shares and histograms."""
    rule = entropy_guided_rule()
    entropies: dict[str, list[torch.Tensor]] = {label: [] for label in LABELS}
    taus: dict[str, list[torch.Tensor]] = {label: [] for label in LABELS}
    flags: dict[str, dict[str, list[torch.Tensor]]] = {
        flag: {label: [] for label in LABELS} for flag in ("gated", "at_min", "at_max")
    }
    for logits, names in response_logits(model, tokenizer, rows, batch_size):
        token_entropy = entropy(logits)
        result = rule(logits, token_entropy)
        label_of = torch.tensor([LABELS.index(name) for name in names])
        for index, label in enumerate(LABELS):
            pick = label_of == index
            entropies[label].append(token_entropy[pick])
            taus[label].append(result.tau[pick])
            for flag, lists in flags.items():
                lists[label].append(getattr(result, flag)[pick])
    groups = {label: [label] for label in LABELS} | {"determined": ["result", "format"], "fork": ["choice", "phrase"]}
    out: dict[str, Any] = {"rows": len(rows), "tau_range": [rule.tau_min, rule.tau_max], "labels": {}}
    for group, members in groups.items():
        group_entropy = torch.cat([t for m in members for t in entropies[m]])
        tau = torch.cat([t for m in members for t in taus[m]])
        histogram = torch.histc(tau.double(), bins=TAU_BINS, min=rule.tau_min, max=rule.tau_max)
        out["labels"][group] = {
            "tokens": int(group_entropy.numel()),
            "entropy": _summary(group_entropy),
            "tau": _summary(tau),
            # Shares of tokens: gated (tau_min by the gate), clamped at tau_min, clamped at tau_max.
            **{flag: _share(torch.cat([t for m in members for t in lists[m]])) for flag, lists in flags.items()},
            "tau_histogram": histogram.tolist(),
        }
    return out


def probe_model(model_dir: Path, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Load an exported model folder (float32, CPU) and :func:`probe` it."""
    from curio.models import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(str(model_dir))
    model = load_causal_lm(str(model_dir), dtype="float32")
    return {"model": str(model_dir), **probe(model, tokenizer, rows)}
