"""Character-span labels over a response, and their projection onto tokens.

Every character of a response is one of:

- ``CHOICE``: a branching point. Among the valid next steps (:func:`curio.tinyworld.steps.candidate_steps`)
  that agree with the line so far, more than one distinct character could come next. A model that knows
  the world should spread probability here (its entropy is > 0).
- ``RESULT``: a digit of an arithmetic result (``27`` in ``9*3=27``). Fully determined by arithmetic
  facts; a good model is certain.
- ``PHRASE``: a wording fork (:mod:`curio.tinyworld.phrasing`): the world offers several equally valid
  wordings here (a connector, how a result is stated). Free choices that change nothing downstream;
  only worlds with wording forks have them.
- ``FORMAT``: everything else: copying the rewritten expression, ``=``, ``, so ``, the newline, the
  ``\\boxed{}`` line, the distributed form ``3*4+3*5``. Also fully determined.

``RESULT`` and ``FORMAT`` together are the "determined" characters, ``CHOICE`` and ``PHRASE`` the
"forks". Labels are stored as half-open ``[start, end)`` spans of CHOICE, RESULT and PHRASE
characters; FORMAT is the complement.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import Any

Span = tuple[int, int]


class TokenLabel(IntEnum):
    """Per-token label: CHOICE wins over PHRASE wins over RESULT wins over FORMAT."""

    FORMAT = 0
    CHOICE = 1
    RESULT = 2
    PHRASE = 3


_PRIORITY = (TokenLabel.CHOICE, TokenLabel.PHRASE, TokenLabel.RESULT)


def positions_to_spans(positions: Sequence[int]) -> list[Span]:
    """Merge sorted character positions into maximal half-open spans: ``[0, 1, 5] -> [(0, 2), (5, 6)]``."""
    spans: list[Span] = []
    for pos in positions:
        if spans and spans[-1][1] == pos:
            spans[-1] = (spans[-1][0], pos + 1)
        else:
            spans.append((pos, pos + 1))
    return spans


def token_labels(
    offsets: Sequence[Sequence[int]],
    choice_spans: Sequence[Sequence[int]],
    result_spans: Sequence[Sequence[int]],
    phrase_spans: Sequence[Sequence[int]] = (),
) -> list[int]:
    """Label each token from its ``(start, end)`` character offsets.

    CHOICE wins over PHRASE wins over RESULT wins over FORMAT: a token that merges a branching
    character with determined ones is still the place where the model makes the choice. Zero-width
    tokens (special tokens) are FORMAT.
    """
    spans_by_label = ((result_spans, TokenLabel.RESULT), (phrase_spans, TokenLabel.PHRASE), (choice_spans, TokenLabel.CHOICE))
    length = max([end for _, end in offsets] + [end for spans, _ in spans_by_label for _, end in spans], default=0)
    char_labels = [TokenLabel.FORMAT] * length
    for spans, label in spans_by_label:
        for start, end in spans:
            char_labels[start:end] = [label] * (end - start)
    labels: list[int] = []
    for start, end in offsets:
        covered = char_labels[start:end]
        labels.append(next((label for label in _PRIORITY if label in covered), TokenLabel.FORMAT))
    return labels


def label_response(
    tokenizer: Any,
    response: str,
    choice_spans: Sequence[Sequence[int]],
    result_spans: Sequence[Sequence[int]],
    phrase_spans: Sequence[Sequence[int]] = (),
) -> tuple[list[int], list[int]]:
    """Tokenise ``response`` alone (as the trainer does) and return ``(token_ids, token_labels)``.

    ``tokenizer`` is a fast Hugging Face tokenizer (it must support ``return_offsets_mapping``).
    """
    encoding = tokenizer(response, add_special_tokens=False, return_offsets_mapping=True)
    labels = token_labels(encoding["offset_mapping"], choice_spans, result_spans, phrase_spans)
    return list(encoding["input_ids"]), labels
