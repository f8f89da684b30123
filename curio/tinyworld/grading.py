"""Answer checking for the tiny world: pure Python, no math-verify needed (answers are integers)."""

from __future__ import annotations

# One boxed-answer parser for the whole project: the evaluation's (nested braces, \fbox, cut-off boxes).
from curio.evaluation.answers import last_boxed as extract_boxed

__all__ = ["extract_boxed", "is_correct", "normalize_answer"]


def normalize_answer(answer: str) -> str:
    """Canonical form of an integer answer (``" +07. "`` -> ``"7"``); other strings only lose spaces."""
    stripped = answer.replace(" ", "").rstrip(".").lstrip("+")
    try:
        return str(int(stripped))
    except ValueError:
        return stripped


def is_correct(text: str, answer: str | int) -> bool:
    """True if the last boxed answer in ``text`` equals ``answer`` after normalisation."""
    boxed = extract_boxed(text)
    return boxed is not None and normalize_answer(boxed) == normalize_answer(str(answer))
