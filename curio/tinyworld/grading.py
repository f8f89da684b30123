"""Answer checking for the tiny world: pure Python, no math-verify needed (answers are integers)."""

from __future__ import annotations

_BOXED = "\\boxed{"


def extract_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` in ``text`` (braces balanced), or None if there is none."""
    start = text.rfind(_BOXED)
    if start < 0:
        return None
    depth = 1
    pos = start + len(_BOXED)
    for end in range(pos, len(text)):
        if text[end] == "{":
            depth += 1
        elif text[end] == "}":
            depth -= 1
            if depth == 0:
                return text[pos:end]
    return None


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
