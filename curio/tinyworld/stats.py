"""Summary numbers of a built corpus, measured in tokens of its own tokenizer (for the manifest/README)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from statistics import mean
from typing import Any

from curio.tinyworld.corpus import Row
from curio.tinyworld.expr import count_ops, parse
from curio.tinyworld.labels import TokenLabel, token_labels


def _token_counts(tokenizer: Any, texts: list[str]) -> list[int]:
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def split_stats(rows: Sequence[Row], tokenizer: Any) -> dict[str, Any]:
    """Row count, operation counts, prompt length and, for chat splits, response length and label mix.

    Response lengths exclude the end-of-turn token the trainer appends. Texts are tokenised as one
    batch, which is what keeps this fast on large splits.
    """
    n_ops = Counter(count_ops(parse(row["problem"])) for row in rows)
    prompts = [
        tokenizer.apply_chat_template(row["messages"][:2], tokenize=False, add_generation_prompt=True)
        for row in rows
    ]
    stats: dict[str, Any] = {
        "rows": len(rows),
        "n_ops": {str(k): n_ops[k] for k in sorted(n_ops)},
        "mean_prompt_tokens": round(mean(_token_counts(tokenizer, prompts)), 1),
    }
    if "choice_spans" not in rows[0]:
        return stats
    responses = [row["messages"][2]["content"] for row in rows]
    offsets = tokenizer(responses, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    lengths = [len(row_offsets) for row_offsets in offsets]
    label_counts: Counter[int] = Counter()
    for row, row_offsets in zip(rows, offsets):
        label_counts.update(
            token_labels(row_offsets, row["choice_spans"], row["result_spans"], row.get("phrase_spans", ()))
        )
    total = sum(label_counts.values())
    stats.update(
        {
            "flawed": sum(row["flawed"] for row in rows),
            "mean_response_tokens": round(mean(lengths), 1),
            "max_response_tokens": max(lengths),
            "token_label_share": {label.name.lower(): round(label_counts[label] / total, 4) for label in TokenLabel},
            "mean_choice_tokens_per_response": round(label_counts[TokenLabel.CHOICE] / len(rows), 2),
        }
    )
    return stats
