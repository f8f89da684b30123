"""Finding the final answer in a model response, and putting answers in a canonical string form.

Everything here is plain string processing that runs in linear time, so it is safe to call in the
main process on untrusted model output. Symbolic equivalence (math-verify) lives in
:mod:`curio.evaluation.grading`, behind a process boundary.
"""

from __future__ import annotations

import re
from collections import deque

THINK_CLOSE = "</think>"
_BOX_COMMANDS = ("\\boxed", "\\fbox")


def answer_region(response: str, require_think_close: bool) -> str | None:
    """The part of ``response`` that may hold the final answer.

    With ``require_think_close`` (the RL reward rule) only text after the last ``</think>`` counts,
    and a response that never closes its reasoning has no answer at all (None).
    """
    if not require_think_close:
        return response
    cut = response.rfind(THINK_CLOSE)
    return None if cut < 0 else response[cut + len(THINK_CLOSE) :]


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` or ``\\fbox{...}`` (braces may nest), or ``\\boxed x``.

    Returns None when there is no box, when the last box is empty, or when its braces never close
    (a response cut off mid-answer has not given that answer).
    """
    start, command = max((text.rfind(c), c) for c in _BOX_COMMANDS)
    if start < 0:
        return None
    i = start + len(command)
    if text.startswith("{", i):
        depth = 0
        for j in range(i, len(text)):
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
                if depth == 0:
                    return text[i + 1 : j].strip() or None
        return None
    if i < len(text) and text[i] == " ":
        # ``\boxed 5``: the argument is the next whitespace/dollar-delimited token.
        match = re.match(r"\s*([^\s$]+)", text[i:])
        return match.group(1) if match else None
    return None


# Unit words that cannot be mistaken for a variable; single letters (m, s, g) are deliberately
# absent because "2m" may well be the answer 2*m.
_UNITS = (
    r"units?|square|sq|cubic|cm|centimeters?|mm|millimeters?|km|kilometers?|meters?|inch(?:es)?|"
    r"feet|foot|ft|yards?|miles?|mph|seconds?|sec|minutes?|mins?|hours?|hrs?|days?|weeks?|"
    r"months?|years?|degrees?|radians?|dollars?|cents?|pounds?|lbs?|kg|grams?|liters?|ml|"
    r"ways|points?|people|students?|children|tickets|edges|digits|integers|meals"
)
_TRAILING_UNITS = re.compile(rf"(?<=[\d}}])(?:\s*(?:{_UNITS})(?:\^\{{?[23]\}}?)?)+\.?\s*$")
_TEXT_WRAPPER = re.compile(
    r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mathit|mbox|operatorname)\s*\{([^{}]*)\}"
)
_SHORT_LHS = re.compile(r"^[A-Za-z](?:_\{?\w\}?)?$")


def normalize_answer(answer: str) -> str:
    """Canonical string form of a final answer, for exact comparison and majority voting.

    Drops what never changes the value of a competition answer: dollar signs,
    ``\\left``/``\\right``, text wrappers, degree marks, percent signs, trailing unit words, LaTeX
    spacing, all whitespace and a trailing period. Rewrites ``\\dfrac``/``\\tfrac`` to ``\\frac``,
    ``\\frac12`` to ``\\frac{1}{2}``, ``4.5\\times10^{33}`` to ``4.5e33``, ``142.0`` to ``142``,
    ``.5`` to ``0.5``, ``1,000`` to ``1000`` and ``x=5`` (single-letter left side) to ``5``.
    """
    s = answer.strip().replace("\u2212", "-")
    s = s.replace("\\$", "").replace("$", "")
    s = re.sub(r"\\(?:left|right)\.", "", s)
    s = re.sub(r"\\(?:left|right)(?![A-Za-z])", "", s)
    # Each pass unwraps the innermost wrappers; real answers nest two deep at most, and a fixed
    # number of passes keeps adversarial nesting linear.
    for _ in range(3):
        s = _TEXT_WRAPPER.sub(r"\1", s)
    s = re.sub(r"\\[dt]frac", r"\\frac", s)
    s = re.sub(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|\\degree|°", "", s)
    s = s.replace("\\%", "").replace("%", "")
    s = re.sub(r"\\[,;:! ]|\\displaystyle|~", " ", s)
    s = _TRAILING_UNITS.sub("", s)
    s = re.sub(r"\s+", "", s).rstrip(".")
    s = s.replace("{,}", ",")
    s = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac(\{[^{}]*\})(\d)", r"\\frac\1{\2}", s)
    s = re.sub(r"\\frac(\d)(\{)", r"\\frac{\1}\2", s)
    s = re.sub(r"\\sqrt(\d)", r"\\sqrt{\1}", s)
    s = re.sub(r"(\d)(?:\\times|\\cdot)10\^\{?(-?\d+)\}?$", r"\1e\2", s)
    if "=" in s and s.count("=") == 1 and _SHORT_LHS.match(s.split("=")[0]):
        s = s.split("=")[1]
    if re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?", s):
        s = s.replace(",", "")
    s = re.sub(r"^(-?)\.(\d)", r"\g<1>0.\2", s)
    s = re.sub(r"^(-?\d+)\.0+$", r"\1", s)
    return s


def as_integer(normalized: str) -> int | None:
    """The integer a normalised answer spells exactly (``"025"`` -> 25), else None."""
    return int(normalized) if re.fullmatch(r"-?\d+", normalized) else None


_CHOICE_IN_BOX = re.compile(r"\(?([A-Za-z])\)?(?:$|[.:)\s])|\(?([1-9])\)?$")
_CHOICE_AFTER_PHRASE = re.compile(
    r"(?i:answer)(?:\s+(?i:is))?\s*(?:[:\uff1a]|(?i:option|choice))?\s*(?:\*\*|\$|\\text\{|\()*\s*"
    r"([A-J]|[1-9])(?![\w]|\.\d)"
)
_CHOICE_IN_PARENS = re.compile(r"\(([A-J])\)")
_CHOICE_ALONE = re.compile(r"\s*\(?([A-J])\)?[.:]?\s*")


def normalize_choice(label: str) -> str:
    """Canonical form of a multiple-choice label: ``"(c)"`` -> ``"C"``."""
    return label.strip().strip("()").strip().upper()


def extract_choice(text: str) -> str | None:
    """The multiple-choice label a response commits to, or None.

    Looks, in order of how explicit the commitment is, at the last ``\\boxed{...}`` (``C``, ``(C)``,
    ``C) text``, ``\\text{C}``, or a digit label such as ``2``), the last "answer is C" /
    "ANSWER: C" phrase, the last parenthesised letter ``(C)``, and a response that is only a letter.
    """
    boxed = last_boxed(text)
    if boxed is not None:
        match = _CHOICE_IN_BOX.match(normalize_answer(boxed))
        if match:
            return (match.group(1) or match.group(2)).upper()
    for pattern in (_CHOICE_AFTER_PHRASE, _CHOICE_IN_PARENS):
        # deque(maxlen=1) keeps only the last match without building a list of all of them.
        last = deque(pattern.finditer(text), maxlen=1)
        if last:
            return last[0].group(1)
    alone = _CHOICE_ALONE.fullmatch(text)
    return alone.group(1) if alone else None
