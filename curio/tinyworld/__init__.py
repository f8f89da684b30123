"""The tiny reasoning world: arithmetic problems whose step-by-step solutions have labelled choice points.

Modules, one concept each:

- :mod:`~curio.tinyworld.expr`: expression trees, their text form and parser.
- :mod:`~curio.tinyworld.settings`: the ID and OOD problem distributions and value limits.
- :mod:`~curio.tinyworld.problems`: random problems.
- :mod:`~curio.tinyworld.steps`: the valid next steps from an expression and their text lines.
- :mod:`~curio.tinyworld.solutions`: solutions written by a policy, optional slips, character labels.
- :mod:`~curio.tinyworld.labels`: CHOICE / RESULT / FORMAT labels and their mapping onto tokens.
- :mod:`~curio.tinyworld.grading`: boxed-answer extraction and checking.
- :mod:`~curio.tinyworld.verify`: step-by-step checking of a written solution.
- :mod:`~curio.tinyworld.prompts`: the system prompt and user phrasings.
- :mod:`~curio.tinyworld.corpus`: the data splits and their JSONL rows.
- :mod:`~curio.tinyworld.tokenizer`: the BPE tokenizer and ChatML template.
- :mod:`~curio.tinyworld.stats`, :mod:`~curio.tinyworld.readme`, :mod:`~curio.tinyworld.build`: the assets.

Build everything with ``python -m curio.tinyworld build --out assets/tiny_world``.
"""

from curio.tinyworld.grading import extract_boxed, is_correct
from curio.tinyworld.labels import TokenLabel, label_response, token_labels
from curio.tinyworld.verify import verify_solution

__all__ = ["TokenLabel", "extract_boxed", "is_correct", "label_response", "token_labels", "verify_solution"]
