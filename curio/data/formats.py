"""The three row formats, turned into one shape: chat messages whose assistant turns are supervised.

- ``prompt_response``: ``{"prompt": str, "response": str}`` (optional ``system`` from config).
- ``messages``: ``{"messages": [{"role", "content"}, ...]}``, multi-turn; loss on assistant turns.
- ``authors``: the CurioSFT authors' (LUFFY) rows, spec section 2: ``prompt`` is a message list and
  ``target`` a list holding one assistant message whose content starts with ``"<think>\\n"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from curio.errors import DataError

FORMATS = ("auto", "prompt_response", "messages", "authors")
ROLES = ("system", "user", "assistant")


@dataclass
class Conversation:
    """``prompt``: messages before the first answer. ``response``: a single-turn answer appended
    after the generation prompt verbatim (spec section 2), or None for multi-turn ``messages``
    rows, whose supervised spans are the assistant turns as the template renders them."""

    prompt: list[dict[str, str]]
    response: str | None
    messages: list[dict[str, str]] | None = None
    prompt_field: str = "prompt"  # the row field the prompt came from, for error messages


def detect_format(row: dict[str, Any]) -> str:
    if "messages" in row:
        return "messages"
    if "target" in row and isinstance(row.get("prompt"), list):
        return "authors"
    if "prompt" in row and "response" in row:
        return "prompt_response"
    raise ValueError(
        f"cannot tell the format from fields {sorted(row)}: expected 'prompt'+'response', "
        "'messages', or 'prompt' (list)+'target'"
    )


def to_conversation(
    row: dict[str, Any], fmt: str, system_prompt: str | None = None, think_prefix: str | None = None
) -> Conversation:
    """Parse one row. Raises ``DataError`` naming the field; the caller adds file and row."""
    if fmt == "auto":
        try:
            fmt = detect_format(row)
        except ValueError as err:
            raise DataError(str(err)) from err
    if fmt == "prompt_response":
        prompt = _string(row, "prompt")
        response = _string(row, "response")
        messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
        return Conversation(prompt=messages + [{"role": "user", "content": prompt}], response=response)
    if fmt == "messages":
        messages = _messages(row, "messages")
        if not any(m["role"] == "assistant" for m in messages):
            raise DataError("field 'messages': no assistant turn to learn from")
        if system_prompt and messages[0]["role"] != "system":
            messages = [{"role": "system", "content": system_prompt}] + messages
        first = next(i for i, m in enumerate(messages) if m["role"] == "assistant")
        return Conversation(prompt=messages[:first], response=None, messages=messages, prompt_field="messages")
    if fmt == "authors":
        prompt = _messages(row, "prompt")
        target = _messages(row, "target")
        if len(target) != 1 or target[0]["role"] != "assistant":
            raise DataError("field 'target': expected a list with one assistant message")
        response = target[0]["content"]
        if think_prefix and response.startswith(think_prefix):
            response = response[len(think_prefix) :]
        response = response.strip()
        if not response:
            raise DataError("field 'target': empty response")
        return Conversation(prompt=prompt, response=response)
    raise DataError(f"data.format: unknown format {fmt!r}; choose one of {list(FORMATS)}")


def _string(row: dict[str, Any], field: str) -> str:
    if field not in row:
        raise DataError(f"missing field {field!r}")
    value = row[field]
    if not isinstance(value, str):
        raise DataError(f"field {field!r}: expected a string, got {type(value).__name__}")
    if not value.strip():
        raise DataError(f"field {field!r}: empty string")
    return value


def _messages(row: dict[str, Any], field: str) -> list[dict[str, str]]:
    if field not in row:
        raise DataError(f"missing field {field!r}")
    value = row[field]
    if hasattr(value, "tolist"):  # numpy arrays from parquet
        value = value.tolist()
    if not isinstance(value, list) or not value:
        raise DataError(f"field {field!r}: expected a non-empty list of messages")
    messages = []
    for i, message in enumerate(value):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise DataError(f"field {field!r}[{i}]: expected an object with 'role' and 'content'")
        if message["role"] not in ROLES:
            raise DataError(f"field {field!r}[{i}].role: {message['role']!r} is not one of {list(ROLES)}")
        if not isinstance(message["content"], str):
            raise DataError(f"field {field!r}[{i}].content: expected a string")
        messages.append({"role": message["role"], "content": message["content"]})
    return messages
