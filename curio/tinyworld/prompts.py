"""The fixed system prompt and the few phrasings of the user turn."""

from __future__ import annotations

import random

# Short on purpose: it is repeated in every sample, and the tiny model learns the format from the data.
SYSTEM_PROMPT = "Solve step by step."

# A little surface variety in the question, so the model reads the expression rather than a fixed prefix.
USER_TEMPLATES: tuple[str, ...] = (
    "Compute {}.",
    "Evaluate {}.",
    "What is {}?",
    "Calculate {}.",
    "Find the value of {}.",
)


def prompt_messages(problem: str, rng: random.Random) -> list[dict[str, str]]:
    """System and user messages asking for ``problem`` (an expression such as ``(7+2)*3-4*2``)."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": rng.choice(USER_TEMPLATES).format(problem)},
    ]
