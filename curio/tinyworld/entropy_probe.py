"""Teacher-forced token entropy on held-out demonstrations, split by token label.

The question the method is about: is the model unsure where the world offers a choice (CHOICE
tokens) and sure where the next token is determined (RESULT digits, FORMAT copying)? For every
response token of a demonstration, the entropy (nats, full vocabulary, T = 1) of the model's
next-token distribution at the position that predicts it, averaged per label.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from curio.tinyworld.labels import TokenLabel, label_response


@torch.no_grad()
def label_entropies(model: Any, tokenizer: Any, rows: Sequence[dict[str, Any]], batch_size: int = 32) -> dict[str, Any]:
    """``{label: mean entropy}`` plus token counts, over the assistant responses of ``rows``.

    The input is built as the trainer builds it (spec section 2): the chat template's generation
    prompt, then the response tokenised alone, then EOS (EOS is not counted: it has no label).
    """
    model.eval()
    sums = {label.name.lower(): 0.0 for label in TokenLabel}
    counts = {label.name.lower(): 0 for label in TokenLabel}
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        sequences, label_runs = [], []
        for row in chunk:
            prompt = tokenizer.apply_chat_template(row["messages"][:-1], tokenize=False, add_generation_prompt=True)
            prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            response_ids, labels = label_response(
                tokenizer, row["messages"][-1]["content"], row["choice_spans"], row["result_spans"]
            )
            sequences.append(prompt_ids + response_ids + [tokenizer.eos_token_id])
            label_runs.append((len(prompt_ids), labels))
        width = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for b, seq in enumerate(sequences):
            ids[b, : len(seq)] = torch.tensor(seq)
            mask[b, : len(seq)] = 1
        logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), dim=-1)
        entropy = -(logp.exp() * logp).sum(-1)  # [B, T]
        for b, (prompt_len, labels) in enumerate(label_runs):
            # Position t predicts token t + 1: response token k is predicted at prompt_len + k - 1.
            for k, label in enumerate(labels):
                name = TokenLabel(label).name.lower()
                sums[name] += float(entropy[b, prompt_len + k - 1])
                counts[name] += 1
    means = {name: sums[name] / counts[name] if counts[name] else float("nan") for name in sums}
    determined = counts["result"] + counts["format"]
    means["determined"] = (sums["result"] + sums["format"]) / determined if determined else float("nan")
    return {"mean_entropy": means, "tokens": counts}
