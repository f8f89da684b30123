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
_UNIT_AT_END = re.compile(rf"(?:{_UNITS})(?:\^\{{?[23]\}}?)?$")
#: Longer than any unit word with its exponent (``centimeters^{2}``): where a trailing unit is looked for.
_UNIT_WINDOW = 24
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
    s = _strip_trailing_units(s)
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


_NUMPY_FUNCTION = re.compile(r"\bnp\.(arcsin|arccos|arctan|sinh|cosh|tanh|sin|cos|tan|exp|log|sqrt|pi)\b")
_PYTHON_FLOAT = re.compile(r"(?<![\d.])(\d+)\.(?![\d\w])")
_E_NOTATION = re.compile(r"(?<![\w.\\])(\d+(?:\.\d+)?)[eE]\+?(-?)0*(\d+)(?![\w.])")
_E_SUBSCRIPT = re.compile(r"(?<!\\mathrm\{)(?<![\\\w])E_")
_SYMBOL_LHS = re.compile(r"^\s*(?:[A-Za-z](?:_\{[^{}=]*\}|_[A-Za-z0-9])?|\\frac\{d\w*\}\{d\w+\})\s*=(?!=)")
_VARIABLE_INTERVAL = re.compile(r"^[A-Za-z]\s*(?=[(\[][^()\[\]]*,[^()\[\]]*[)\]]$)")
_TRAILING_PERCENT = re.compile(r"(?<=\d)\s*\\?%$")


def latex_fixups(text: str) -> str:
    """Notation math-verify misreads, rewritten the way it reads it right; applied to golds and
    to answers alike before they are compared:

    * ``4.5e33``, ``1e-5`` (e-notation: math-verify reads the ``e`` as Euler's number) ->
      ``4.5\\times10^{33}``, ``1\\times10^{-5}``;
    * Python/numpy forms: ``np.arcsin(10/13)`` -> ``\\arcsin(10/13)``, ``-1./3`` -> ``-1/3``;
    * ``E_{1}`` (``E`` is Euler's number to math-verify, so no subscript parses) -> ``\\mathrm{E}_{1}``;
    * ``\\odot`` (solar units, unknown to its LaTeX parser) -> ``sun``.
    """
    text = _NUMPY_FUNCTION.sub(lambda m: "\\pi" if m.group(1) == "pi" else "\\" + m.group(1), text)
    text = _PYTHON_FLOAT.sub(r"\1", text)
    text = _E_NOTATION.sub(lambda m: f"{m.group(1)}\\times10^{{{m.group(2)}{m.group(3)}}}", text)
    text = _E_SUBSCRIPT.sub(r"\\mathrm{E}_", text)
    return text.replace("_\\odot", "_{sun}").replace("\\odot", "sun")


def normalize_gold(ground_truth: str) -> str:
    """A benchmark's reference answer, in the form its grader reads (done once, at load time).

    Drops dollar signs (math delimiters and currency), a symbol or derivative on the left of a
    single ``=`` (``m_{\\max}=n^2-n-1`` -> ``n^2-n-1``; math-verify accepts either form of the
    model's answer against it), a variable before an interval (``t(0,4]`` -> ``(0,4]``) and a
    trailing percent sign (``62.5\\%`` -> ``62.5``, as :func:`normalize_answer` does for answers),
    then applies :func:`latex_fixups`.
    """
    text = ground_truth.strip().replace("\\$", "").replace("$", "").strip()
    if text.count("=") == 1:
        text = _SYMBOL_LHS.sub("", text)
    text = _VARIABLE_INTERVAL.sub("", text)
    text = _TRAILING_PERCENT.sub("", text)
    return latex_fixups(text.strip())


def _strip_trailing_units(s: str) -> str:
    """``"5 square cm^2."`` -> ``"5"``: unit words (with an exponent) at the end, right after a
    digit or ``}``. Scans back from the end one unit at a time, each within a short window, so
    the cost is linear in the length (one regex over the whole string was quadratic on a long run
    of units: 12 s for 24k characters)."""
    core = s.rstrip()
    core = core[:-1] if core.endswith(".") else core
    end, cut = len(core), None
    while end:
        match = _UNIT_AT_END.search(core, max(0, end - _UNIT_WINDOW), end)
        if match is None:
            break
        end = len(core[: match.start()].rstrip())
        if end and core[end - 1] in "0123456789}":
            cut = end  # units from here on follow a digit or a brace: strippable
    return s if cut is None else core[:cut]


def as_integer(normalized: str) -> int | None:
    """The integer a normalised answer spells exactly (``"025"`` -> 25), else None."""
    return int(normalized) if re.fullmatch(r"-?\d+", normalized) else None


_CHOICE_IN_BOX = re.compile(r"\(?([A-Za-z])\)?(?:$|[.:)\s])|\(?([1-9])\)?$")
# "option (A)", "which is choice B": the label named as an option, the most explicit phrase.
_CHOICE_NAMED = re.compile(r"\b(?i:option|choice)\s*(?:\*\*|\$|\\text\{|\()*\s*([A-J]|[1-9])(?![\w]|\.\d)")
# "the answer is C", "ANSWER: 3"; a digit followed by a word ("the answer is 4 eV") is a value.
_CHOICE_AFTER_PHRASE = re.compile(
    r"(?i:answer)(?:\s+(?i:is))?\s*(?:[:\uff1a])?\s*(?:\*\*|\$|\\text\{|\()*\s*"
    r"([A-J]|[1-9](?!\s*[A-Za-z/]))(?![\w]|\.\d)"
)
_CHOICE_IN_PARENS = re.compile(r"\(([A-J])\)")
_CHOICE_ALONE = re.compile(r"\s*\(?([A-J])\)?[.:]?\s*")


def normalize_choice(label: str) -> str:
    """Canonical form of a multiple-choice label: ``"(c)"`` -> ``"C"``."""
    return label.strip().strip("()").strip().upper()


def extract_choice(text: str) -> str | None:
    """The multiple-choice label a response commits to, or None.

    Looks, in order of how explicit the commitment is, at the last ``\\boxed{...}`` (``C``, ``(C)``,
    ``C) text``, ``\\text{C}``, or a digit label such as ``2``), the last "option C" / "choice
    (C)", the last "answer is C" / "ANSWER: C" phrase (not "the answer is 4 eV"), the last
    parenthesised letter ``(C)``, and a response that is only a letter.
    """
    boxed = last_boxed(text)
    if boxed is not None:
        match = _CHOICE_IN_BOX.match(normalize_answer(boxed))
        if match:
            return (match.group(1) or match.group(2)).upper()
    for pattern in (_CHOICE_NAMED, _CHOICE_AFTER_PHRASE, _CHOICE_IN_PARENS):
        # deque(maxlen=1) keeps only the last match without building a list of all of them.
        last = deque(pattern.finditer(text), maxlen=1)
        if last:
            return last[0].group(1)
    alone = _CHOICE_ALONE.fullmatch(text)
    return alone.group(1) if alone else None
