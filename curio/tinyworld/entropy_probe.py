"""Teacher-forced token entropy on held-out demonstrations, split by token label.

The question the method is about: is the model unsure where the world offers a choice (CHOICE
tokens) and sure where the next token is determined (RESULT digits, FORMAT copying)? For every
response token of a demonstration, the entropy (nats, full vocabulary, T = 1) of the model's
next-token distribution at the position that predicts it, averaged per label.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch

from curio.ops import entropy
from curio.tinyworld.labels import TokenLabel, label_response


@torch.no_grad()
def response_logits(
    model: Any, tokenizer: Any, rows: Sequence[dict[str, Any]], batch_size: int = 32
) -> Iterator[tuple[torch.Tensor, list[str]]]:
    """Per batch of demonstrations: ``([n, V] float32 logits, n label names)`` of their response tokens.

    Row ``i`` of the logits is the model's next-token distribution at the position that predicts
    response token ``i`` (teacher-forced), its label one of ``choice``, ``phrase``, ``result``,
    ``format``. The
    input is built as the trainer builds it (spec section 2) up to EOS: the chat template's
    generation prompt, then the response tokenised alone, then EOS (EOS is not returned: it has no
    label). The trainer also trains on the template's newline after EOS, which follows every
    position read here, so it changes none of these logits.
    """
    model.eval()
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        sequences, label_runs = [], []
        for row in chunk:
            prompt = tokenizer.apply_chat_template(row["messages"][:-1], tokenize=False, add_generation_prompt=True)
            prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            response_ids, labels = label_response(
                tokenizer,
                row["messages"][-1]["content"],
                row["choice_spans"],
                row["result_spans"],
                row.get("phrase_spans", ()),
            )
            sequences.append(prompt_ids + response_ids + [tokenizer.eos_token_id])
            label_runs.append((len(prompt_ids), labels))
        width = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for b, seq in enumerate(sequences):
            ids[b, : len(seq)] = torch.tensor(seq)
            mask[b, : len(seq)] = 1
        logits = model(input_ids=ids, attention_mask=mask).logits.float()
        rows_b, positions, names = [], [], []
        for b, (prompt_len, labels) in enumerate(label_runs):
            # Position t predicts token t + 1: response token k is predicted at prompt_len + k - 1.
            for k, label in enumerate(labels):
                rows_b.append(b)
                positions.append(prompt_len + k - 1)
                names.append(TokenLabel(label).name.lower())
        yield logits[torch.tensor(rows_b), torch.tensor(positions)], names


def label_entropies(model: Any, tokenizer: Any, rows: Sequence[dict[str, Any]], batch_size: int = 32) -> dict[str, Any]:
    """``{label: mean entropy}`` plus token counts, over the assistant responses of ``rows``.

    Labels with no token (``phrase`` in a world with one wording) are left out.
    """
    sums = {label.name.lower(): 0.0 for label in TokenLabel}
    counts = {label.name.lower(): 0 for label in TokenLabel}
    for logits, names in response_logits(model, tokenizer, rows, batch_size):
        for value, name in zip(entropy(logits).tolist(), names):
            sums[name] += value
            counts[name] += 1
    counts = {name: count for name, count in counts.items() if count}
    means = {name: sums[name] / counts[name] for name in counts}
    determined = counts.get("result", 0) + counts.get("format", 0)
    means["determined"] = (sums["result"] + sums["format"]) / determined if determined else float("nan")
    return {"mean_entropy": means, "tokens": counts}
